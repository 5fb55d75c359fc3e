"""The parser modules: importing this package registers every built-in parser.

One import line per module, kept sorted (``as`` marks the re-export); each
module registers its parser at its bottom with
:func:`collectors.base.register_parser`, which refuses a duplicate name.
"""

from collectors.parsers import camera as camera
from collectors.parsers import ecs_json as ecs_json
from collectors.parsers import mqtt as mqtt
from collectors.parsers import syslog as syslog
from collectors.parsers import zeek as zeek
