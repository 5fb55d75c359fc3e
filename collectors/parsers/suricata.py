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
from datetime import datetime
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
    """The ``alert`` fields: :func:`_alert_checked`, with a shortcut for an alert object whose values all
    have their plain types (what Suricata writes; the benchmark's records).

    The shortcut adds the same fields in the same order; anything else (a missing ``signature_id``, a
    wrong type) goes to :func:`_alert_checked`, which raises the record's error -- before any field is set.
    """
    alert = row.get("alert")
    if type(alert) is dict:
        get = alert.get
        sid, signature, action = get("signature_id"), get("signature"), get("action")
        severity, category, rev = get("severity"), get("category"), get("rev")
        if (
            type(sid) is int and sid >= 0  # type(...) is int: not a bool, which _int rejects
            and (signature is None or type(signature) is str)
            and (action is None or type(action) is str)
            and (severity is None or (type(severity) is int and severity >= 0))
            and (category is None or type(category) is str)
            and (rev is None or (type(rev) is int and rev >= 0))
        ):  # fmt: skip
            signature = signature or f"sid {sid}"
            # keys already in the record's fields keep their place (as dict.update does), new ones go last
            fields["event.kind"] = "alert"
            fields["event.category"] = ("network", "intrusion_detection")
            fields["event.type"] = ("denied",) if action == "blocked" else ("allowed",)
            fields["rule.id"] = str(sid)
            fields["rule.name"] = signature
            fields["message"] = signature
            if action is not None:
                fields["event.action"] = action
            if severity is not None:
                fields["event.severity"] = severity
            if category is not None:
                fields["rule.category"] = category
            if rev is not None:
                fields["rule.ruleset"] = f"rev {rev}"
            # as the unconditional calls in _alert_checked: each does nothing when its key is absent
            if "http" in row:
                _http(row, fields, keep_action=True)
            if "tls" in row:
                _tls(row, fields, keep_action=True)
            if "dns" in row:
                _dns(row, fields, keep_action=True)
            return
    _alert_checked(row, fields)


def _alert_checked(row: dict[str, Any], fields: dict[str, Value]) -> None:
    """The ``alert`` fields, every value checked (the general path of :func:`_alert`)."""
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
        data = record.data
        row = load_json_object(data)
        if "event_type" not in row or "timestamp" not in row:  # all(key in row for key in SIGNATURE), unrolled
            raise NotMyFormat("JSON object without 'event_type' and 'timestamp' is not a Suricata EVE record")
        timestamp, etype, fields = _plain_common(row, data) or _common(row, data)
        mapper = MAPPERS.get(etype)
        if mapper is not None:
            mapper(row, fields)
        try:
            return [Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)]
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc


def _head(
    etype: str, data: str, src: str | None, sport: int | None, dst: str | None, dport: int | None
) -> dict[str, Value]:
    """The fields every EVE record starts with (both paths: _plain_common and _common), message included."""
    return {
        "event.kind": "event",
        "event.category": ("network",),
        "event.type": ("info",),
        "event.action": etype,
        "event.module": "suricata",
        "event.dataset": f"suricata.{etype}",
        "event.original": data,
        "message": f"suricata {etype} {src or '-'}:{sport if sport is not None else '-'} -> "
        f"{dst or '-'}:{dport if dport is not None else '-'}",
    }


def _common(row: dict[str, Any], data: str) -> tuple[datetime, str, dict[str, Value]]:
    """The time, event type and fields every record has, every value checked (BadRecord says what is wrong)."""
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
    fields = _head(etype, data, src, sport, dst, dport)
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
    return timestamp, etype, fields


def _plain_common(row: dict[str, Any], data: str) -> tuple[datetime, str, dict[str, Value]] | None:
    """What :func:`_common` returns, for a record whose common values all have their plain types (strings,
    non-negative integers, valid addresses, a valid time: what Suricata writes); None for anything else,
    which :func:`_common` then handles (or rejects with its message).

    The same fields in the same order, without a helper call or a throw-away dict per field.
    """
    etype, stamp = row["event_type"], row["timestamp"]
    get = row.get
    src, dst, sport, dport = get("src_ip"), get("dest_ip"), get("src_port"), get("dest_port")
    proto, flow_id, app_proto, community_id, host = (
        get("proto"), get("flow_id"), get("app_proto"), get("community_id"), get("host")
    )  # fmt: skip
    if not (
        type(etype) is str and etype and type(stamp) is str and stamp
        and (src is None or type(src) is str) and (dst is None or type(dst) is str)
        and (sport is None or (type(sport) is int and sport >= 0))  # type(...) is int: not a bool
        and (dport is None or (type(dport) is int and dport >= 0))
        and (flow_id is None or (type(flow_id) is int and flow_id >= 0))
        and (proto is None or type(proto) is str) and (app_proto is None or type(app_proto) is str)
        and (community_id is None or type(community_id) is str) and (host is None or type(host) is str)
    ):  # fmt: skip
        return None
    try:
        timestamp = parse_ts(stamp)
        src = None if src is None else normal_ip(src)
        dst = None if dst is None else normal_ip(dst)
    except ValueError:  # EventValidationError is one: _common raises the record's error
        return None
    fields = _head(etype, data, src, sport, dst, dport)
    # _common's optional fields, in its order, each only when it has a value
    if src is not None:
        fields["source.ip"] = src
    if sport is not None:
        fields["source.port"] = sport
    if dst is not None:
        fields["destination.ip"] = dst
    if dport is not None:
        fields["destination.port"] = dport
    if proto:
        fields["network.transport"] = proto.lower()
    if app_proto and app_proto != "failed":
        fields["network.protocol"] = app_proto.lower()
    if community_id is not None:
        fields["network.community_id"] = community_id
    if flow_id is not None:
        fields["labels.flow_id"] = str(flow_id)
    if host is not None:
        fields["labels.sensor"] = host
    fields["observer.product"] = "suricata"
    # tuple(dict.fromkeys(ip for ip in (src, dst) if ip)): both addresses, once each (an address is never "")
    if src is not None:
        fields["related.ip"] = (src,) if dst is None or dst == src else (src, dst)
    elif dst is not None:
        fields["related.ip"] = (dst,)
    return timestamp, etype, fields


register_parser(SuricataEveParser)
