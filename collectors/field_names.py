"""Source field names and the schema names they become, shared by writers and rule mapping.

Collectors that write these sources (the Windows EVTX parser) and the Sigma
processing pipeline that maps rule fields onto our schema
(``detections/sigma/pipelines.py``) read the same tables, so a parsed event
and a rule always agree on where a field lives.
"""

from __future__ import annotations

#: Process fields of the Sigma process_creation taxonomy (Sysmon 1 / 4688, auditd, ESF).
PROCESS_FIELDS: dict[str, str] = {
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "User": "user.name",
    "ProcessId": "process.pid",
}

#: Network connection fields (Sysmon 3, Linux network_connection).
NETWORK_FIELDS: dict[str, str] = {
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "SourceHostname": "source.domain",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "DestinationHostname": "destination.domain",
    "Protocol": "network.transport",
}

#: File event fields (Sysmon 11/23/26 and the generic file_event category).
FILE_FIELDS: dict[str, str] = {
    "TargetFilename": "file.path",
}

#: Windows EventData items with a schema name of their own, for every channel; every other
#: EventData item is kept as ``winlog.event_data.<Name>``.
WINDOWS_EVENT_DATA_FIELDS: dict[str, str] = {
    **PROCESS_FIELDS,
    **NETWORK_FIELDS,
    **FILE_FIELDS,
    "QueryName": "dns.question.name",
    "ImageLoaded": "file.path",
}
