"""Collectors: parsers that turn raw records into events, and the transports that receive them.

:mod:`collectors.base` is the parser contract, :mod:`collectors.pipeline` the
ingest pipeline, :mod:`collectors.parsers` the built-in formats and
:mod:`collectors.transports` the syslog server and the file tailer.  Importing
the package registers the built-in parsers, so ``get_parser("syslog")`` works
wherever :mod:`collectors.base` is imported.
"""

import collectors.parsers  # noqa: F401  (registration happens on import)
