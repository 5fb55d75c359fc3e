"""Suricata EVE JSON parser: alert, flow, dns, http and tls records (others with the common fields).

One EVE object per line (``eve.json``).  Every record gets ``@timestamp`` from
``timestamp`` (Suricata writes ``+0000``-style offsets), the 5-tuple
(``src_ip``/``src_port`` -> ``source.*``, ``dest_*`` -> ``destination.*``),
``network.transport`` from ``proto``, ``network.protocol`` from ``app_proto``,
``network.community_id`` and ``labels.flow_id``.  An ``alert`` record is an
``event.kind: alert`` with ``rule.id`` (signature id), ``rule.name``,
``rule.category``, ``event.severity`` (1 = high) and ``event.action`` =
``allowed``/``blocked``.  ``event.dataset`` is ``suricata.<event_type>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from collectors.parsers.ecs_json import load_json_object
from store.errors import EventValidationError
from store.event import Event, Value, normal_ip, parse_ts, stable_id

#: keys by which a JSON object is recognised as an EVE record
SIGNATURE: tuple[str, ...] = ("event_type", "timestamp")


def _obj(row: dict[str, Any], key: str) -> dict[str, Any]:
    value = row.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRecord(f"key {key!r} must be an object, not {type(value).__name__}")
    return value


def _str(row: dict[str, Any], key: str, where: str = "") -> str | None:
    value = row.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadRecord(f"key '{where}{key}' must be a string, not {type(value).__name__}")


def _int(row: dict[str, Any], key: str, where: str = "") -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRecord(f"key '{where}{key}' must be a non-negative integer, not {value!r}")
    return value


def _ip(row: dict[str, Any], key: str) -> str | None:
    value = _str(row, key)
    if value is None:
        return None
    try:
        return normal_ip(value)
    except ValueError:
        raise BadRecord(f"key {key!r}: {value!r} is not an IP address") from None


def _alert(row: dict[str, Any], fields: dict[str, Value]) -> None:
    alert = _obj(row, "alert")
    sid = _int(alert, "signature_id", "alert.")
    if sid is None:
        raise BadRecord("key 'alert.signature_id' is missing")
    signature = _str(alert, "signature", "alert.") or f"sid {sid}"
    action = _str(alert, "action", "alert.")
    severity = _int(alert, "severity", "alert.")
    fields.update({
        "event.kind": "alert",
        "event.category": ("network", "intrusion_detection"),
        "event.type": ("denied",) if action == "blocked" else ("allowed",),
        "rule.id": str(sid),
        "rule.name": signature,
        "message": signature,
    })  # fmt: skip
    optional: dict[str, Value | None] = {
        "event.action": action,
        "event.severity": severity,
        "rule.category": _str(alert, "category", "alert."),
        "rule.ruleset": None if _int(alert, "rev", "alert.") is None else f"rev {alert['rev']}",
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    _http(row, fields, keep_action=True)
    _tls(row, fields, keep_action=True)
    _dns(row, fields, keep_action=True)


def _flow(row: dict[str, Any], fields: dict[str, Value]) -> None:
    flow = _obj(row, "flow")
    fields["event.type"] = ("connection", "end")
    fields["event.action"] = "flow"
    to_server, to_client = _int(flow, "bytes_toserver", "flow."), _int(flow, "bytes_toclient", "flow.")
    pk_server, pk_client = _int(flow, "pkts_toserver", "flow."), _int(flow, "pkts_toclient", "flow.")
    if to_server is not None:
        fields["source.bytes"] = to_server
    if to_client is not None:
        fields["destination.bytes"] = to_client
    if to_server is not None and to_client is not None:
        fields["network.bytes"] = to_server + to_client
    if pk_server is not None and pk_client is not None:
        fields["network.packets"] = pk_server + pk_client
    state = _str(flow, "state", "flow.")
    if state:
        fields["labels.flow_state"] = state
    start, end = _str(flow, "start", "flow."), _str(flow, "end", "flow.")
    if start and end:
        try:
            fields["event.duration"] = int((parse_ts(end) - parse_ts(start)).total_seconds() * 1_000_000_000)
        except EventValidationError as exc:
            raise BadRecord(f"key 'flow.start'/'flow.end': {exc}") from exc


def _dns(row: dict[str, Any], fields: dict[str, Value], keep_action: bool = False) -> None:
    dns = _obj(row, "dns")
    if not dns:
        return
    fields["network.protocol"] = "dns"
    if not keep_action:
        fields["event.type"] = ("protocol",)
        fields["event.action"] = f"dns_{_str(dns, 'type', 'dns.') or 'message'}"
    name = _str(dns, "rrname", "dns.")
    if name is None:
        queries = dns.get("queries")
        if isinstance(queries, list) and queries and isinstance(queries[0], dict):
            name = _str(queries[0], "rrname", "dns.queries[0].")
    if name is not None:
        fields["dns.question.name"] = name
    rcode = _str(dns, "rcode", "dns.")
    if rcode is not None and not keep_action:
        fields["event.outcome"] = "success" if rcode == "NOERROR" else "failure"


def _http(row: dict[str, Any], fields: dict[str, Value], keep_action: bool = False) -> None:
    http = _obj(row, "http")
    if not http:
        return
    fields["network.protocol"] = "http"
    if not keep_action:
        fields["event.category"] = ("network", "web")
        fields["event.type"] = ("protocol", "access")
        fields["event.action"] = "http_request"
    url = _str(http, "url", "http.")
    status = _int(http, "status", "http.")
    optional: dict[str, Value | None] = {
        "url.domain": _str(http, "hostname", "http."),
        "url.original": url,
        "http.request.method": _str(http, "http_method", "http."),
        "http.response.status_code": status,
        "http.response.bytes": _int(http, "length", "http."),
        "user_agent.original": _str(http, "http_user_agent", "http."),
        "http.request.referrer": _str(http, "http_refer", "http."),
        "http.version": (_str(http, "protocol", "http.") or "").removeprefix("HTTP/") or None,
    }
    if url is not None:
        path, _, query = url.partition("?")
        optional["url.path"] = path
        optional["url.query"] = query or None
    fields.update({k: v for k, v in optional.items() if v is not None})
    if status is not None and not keep_action:
        fields["event.outcome"] = "success" if status < 400 else "failure"


def _tls(row: dict[str, Any], fields: dict[str, Value], keep_action: bool = False) -> None:
    tls = _obj(row, "tls")
    if not tls:
        return
    fields["network.protocol"] = "tls"
    if not keep_action:
        fields["event.type"] = ("protocol",)
        fields["event.action"] = "tls_handshake"
    version = _str(tls, "version", "tls.")
    ja3 = _obj(tls, "ja3")
    optional: dict[str, Value | None] = {
        "tls.version": version.removeprefix("TLS ").removeprefix("TLSv") if version else None,
        "tls.client.server_name": _str(tls, "sni", "tls."),
        "tls.server.subject": _str(tls, "subject", "tls."),
        "tls.server.issuer": _str(tls, "issuerdn", "tls."),
        "tls.client.ja3": _str(ja3, "hash", "tls.ja3."),
    }
    fields.update({k: v for k, v in optional.items() if v is not None})


#: event_type -> the function that adds its own fields
MAPPERS: dict[str, Callable[[dict[str, Any], dict[str, Value]], None]] = {
    "alert": _alert,
    "flow": _flow,
    "dns": _dns,
    "http": _http,
    "tls": _tls,
}


class SuricataEveParser(Parser):
    """Suricata EVE JSON records."""

    name: ClassVar[str] = "suricata.eve"
    dataset: ClassVar[str] = "suricata"
    description: ClassVar[str] = "Suricata EVE JSON: alert, flow, dns, http, tls (other types with the 5-tuple)."

    def parse(self, record: RawRecord) -> list[Event]:
        row = load_json_object(record.data)
        if not all(key in row for key in SIGNATURE):
            raise NotMyFormat("JSON object without 'event_type' and 'timestamp' is not a Suricata EVE record")
        etype = _str(row, "event_type")
        stamp = _str(row, "timestamp")
        if not etype or not stamp:
            raise BadRecord("keys 'event_type' and 'timestamp' must be non-empty strings")
        try:
            timestamp = parse_ts(stamp)
        except EventValidationError as exc:
            raise BadRecord(f"key 'timestamp': {exc}") from exc
        src, dst = _ip(row, "src_ip"), _ip(row, "dest_ip")
        sport, dport = _int(row, "src_port"), _int(row, "dest_port")
        proto = _str(row, "proto")
        fields: dict[str, Value] = {
            "event.kind": "event",
            "event.category": ("network",),
            "event.type": ("info",),
            "event.action": etype,
            "event.module": "suricata",
            "event.dataset": f"suricata.{etype}",
            "event.original": record.data,
            "message": f"suricata {etype} {src or '-'}:{sport if sport is not None else '-'} -> "
            f"{dst or '-'}:{dport if dport is not None else '-'}",
        }
        flow_id = _int(row, "flow_id")
        app_proto = _str(row, "app_proto")
        optional: dict[str, Value | None] = {
            "source.ip": src,
            "source.port": sport,
            "destination.ip": dst,
            "destination.port": dport,
            "network.transport": proto.lower() if proto else None,
            "network.protocol": app_proto.lower() if app_proto and app_proto != "failed" else None,
            "network.community_id": _str(row, "community_id"),
            "labels.flow_id": None if flow_id is None else str(flow_id),
            "labels.sensor": _str(row, "host"),
            "observer.product": "suricata",
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        related = tuple(dict.fromkeys(ip for ip in (src, dst) if ip))
        if related:
            fields["related.ip"] = related
        mapper = MAPPERS.get(etype)
        if mapper is not None:
            mapper(row, fields)
        try:
            return [Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)]
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc


register_parser(SuricataEveParser)
