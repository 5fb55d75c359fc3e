"""The pySigma processing pipeline that maps Sigma field names onto the CitySOC event schema.

Sigma rules name fields the way their log source writes them (``Image``,
``CommandLine``, ``c-uri``); our events carry ECS names (:mod:`store.schema`).
:func:`citysoc_pipeline` returns a standard pySigma ``ProcessingPipeline`` made
of pySigma's own field-mapping transformations, each gated by a
``LogsourceCondition``; the loader applies it to every rule with
``pipeline.apply(rule)`` before compiling it, exactly as a pySigma backend does.

Mapping policy:

* A field that already is a schema name (``source.ip``, ``ot.function``,
  ``iot.device.id``, ``event.action``) is never renamed: our own smart-city
  rules are written in schema names.
* Well-known Sigma taxonomy fields with an ECS equivalent map to it, per
  logsource category (process creation, network connection, file, DNS, proxy,
  web server, firewall).  Collectors must emit those ECS names.
* On Windows every other field is an EventData item and maps to
  ``winlog.event_data.<Name>`` (a flattened schema field), so a Windows
  collector only has to keep EventData as written by the provider.
* Anything else keeps its Sigma name; the loader lists such fields per rule
  (``unmapped_fields``) because our events can never carry them.
"""

from __future__ import annotations

from collections.abc import Mapping

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldFunctionTransformation, FieldMappingTransformation

from collectors.field_names import FILE_FIELDS, NETWORK_FIELDS, PROCESS_FIELDS, WINDOWS_EVENT_DATA_FIELDS
from store.schema import lookup

#: Prefix of Windows EventData items that have no ECS name of their own.
WINDOWS_EVENT_DATA = "winlog.event_data."

#: DNS query fields (Sysmon 22 and the generic dns_query / dns categories).
DNS_FIELDS: dict[str, str] = {
    "QueryName": "dns.question.name",
    "query": "dns.question.name",
}

#: Proxy log fields (W3C extended names used by the Sigma proxy taxonomy).
PROXY_FIELDS: dict[str, str] = {
    "c-uri": "url.original",
    "c-uri-query": "url.query",
    "c-uri-stem": "url.path",
    "c-useragent": "user_agent.original",
    "cs-method": "http.request.method",
    "cs-host": "url.domain",
    "cs-bytes": "http.request.bytes",
    "sc-bytes": "http.response.bytes",
    "sc-status": "http.response.status_code",
    "c-ip": "client.ip",
    "src_ip": "source.ip",
    "dst_ip": "destination.ip",
}

#: Web server access log fields (W3C / IIS names used by the Sigma webserver taxonomy).
WEBSERVER_FIELDS: dict[str, str] = {
    "cs-uri-query": "url.query",
    "cs-uri-stem": "url.path",
    "cs-method": "http.request.method",
    "cs-host": "url.domain",
    "cs-user-agent": "user_agent.original",
    "cs-username": "user.name",
    "sc-status": "http.response.status_code",
    "c-ip": "client.ip",
}

#: Firewall log fields of the Sigma firewall taxonomy.
FIREWALL_FIELDS: dict[str, str] = {
    "src_ip": "source.ip",
    "src_port": "source.port",
    "dst_ip": "destination.ip",
    "dst_port": "destination.port",
}

#: Windows fields with a schema name of their own; every other Windows field is EventData.
WINDOWS_FIELDS: dict[str, str] = {
    **WINDOWS_EVENT_DATA_FIELDS,  # the table the EVTX parser writes events with
    "EventID": "winlog.event_id",
    "Channel": "winlog.channel",
    "Computer": "host.name",
    "Provider_Name": "winlog.provider_name",
}

#: (logsource condition arguments, field mapping), applied in this order before the Windows catch-all.
CATEGORY_MAPPINGS: tuple[tuple[Mapping[str, str], Mapping[str, str]], ...] = (
    ({"category": "process_creation"}, PROCESS_FIELDS),
    ({"category": "network_connection"}, NETWORK_FIELDS),
    ({"category": "file_event"}, FILE_FIELDS),
    ({"category": "dns_query"}, DNS_FIELDS),
    ({"category": "dns"}, DNS_FIELDS),
    ({"category": "proxy"}, PROXY_FIELDS),
    ({"category": "webserver"}, WEBSERVER_FIELDS),
    ({"category": "firewall"}, FIREWALL_FIELDS),
)


def _mapping(fields: Mapping[str, str]) -> dict[str | None, str | list[str]]:
    """The mapping type pySigma's field transformations declare."""
    return {name: target for name, target in fields.items()}


def windows_field(name: str | None) -> str:
    """The schema name of a Windows field: a schema name stays, anything else is EventData."""
    if name is None:  # keyword detections have no field; FieldFunctionTransformation skips them
        return ""
    if lookup(name) is not None:
        return name
    return WINDOWS_EVENT_DATA + name


def citysoc_pipeline() -> ProcessingPipeline:
    """A fresh pipeline instance (pySigma pipelines keep per-rule state, so do not share one across threads)."""
    items: list[ProcessingItem] = [
        ProcessingItem(
            identifier=f"citysoc_{conditions['category']}_fields",
            transformation=FieldMappingTransformation(_mapping(mapping)),
            rule_conditions=[LogsourceCondition(**conditions)],
        )
        for conditions, mapping in CATEGORY_MAPPINGS
    ]
    # Runs last: the category items above already gave the taxonomy fields their ECS names,
    # which windows_field leaves alone because they are schema names.
    items.append(
        ProcessingItem(
            identifier="citysoc_windows_fields",
            transformation=FieldFunctionTransformation(mapping=_mapping(WINDOWS_FIELDS), transform_func=windows_field),
            rule_conditions=[LogsourceCondition(product="windows")],
        )
    )
    return ProcessingPipeline(name="CitySOC event schema", items=items)
