"""The parser modules: importing this package registers every built-in parser.

One import line per module, kept sorted (``as`` marks the re-export); each
module registers its parser at its bottom with
:func:`collectors.base.register_parser`, which refuses a duplicate name.
"""

from collectors.parsers import auditd as auditd
from collectors.parsers import camera as camera
from collectors.parsers import cef as cef
from collectors.parsers import ecs_json as ecs_json
from collectors.parsers import evtx as evtx
from collectors.parsers import iot_platform as iot_platform
from collectors.parsers import mqtt as mqtt
from collectors.parsers import scada_csv as scada_csv
from collectors.parsers import suricata as suricata
from collectors.parsers import syslog as syslog
from collectors.parsers import web as web
from collectors.parsers import zeek as zeek
