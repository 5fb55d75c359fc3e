"""Web-server and API-gateway access logs: the combined log format and JSON lines.

Combined log format (nginx ``combined``, Apache ``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"``),
optionally followed by ``key=value`` pairs, as an nginx ``log_format`` that
appends them writes::

    10.1.2.3 - alice [20/Nov/2026:08:00:00 +0700] "GET /api/v1/lights?zone=4 HTTP/1.1" 200 512 "-" "curl/8.5.0" \
rt=0.012 request_id=7f3a api_key_id=key-traffic-01

JSON lines in one of the dialects of :data:`JSON_DIALECTS`: nginx ``log_format
... escape=json`` with nginx variable names (``remote_addr``, ``request_time``
...) or an AWS-API-Gateway-style access log (``requestId``, ``httpMethod``,
``identity.apiKeyId`` ...).  The dialect is recognised by its keys.

Latency (``request_time``/``rt`` seconds, ``responseLatency`` ms) becomes
``event.duration`` in nanoseconds; the API key's id (never a key) goes to
``api.key.id``.  Status >= 400 is ``event.outcome: failure``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from collectors.parsers.ecs_json import load_json_object
from store.errors import EventValidationError
from store.event import Event, Value, normal_ip, parse_ts, stable_id

_CLF = re.compile(
    r'(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" '
    r'(?P<status>\S+) (?P<bytes>\S+)(?: "(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?(?P<rest>.*)'
)
_PAIR = re.compile(r'\s+([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)')
_CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"
# what nginx and Apache write for _CLF_TIME; anything else (and any value out of range) goes to strptime
_CLF_TIME_FAST = re.compile(r"(\d\d)/([A-Z][a-z][a-z])/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)([0-5]\d)")
_MONTHS = {m: n for n, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), start=1)}  # fmt: skip

#: trailing key=value names -> the name used below (as in the nginx JSON dialect); others are ignored
CLF_EXTRAS: dict[str, str] = {
    "rt": "latency_s", "request_time": "latency_s", "request_id": "request_id",
    "api_key_id": "api_key_id", "consumer": "consumer", "host": "host",
}  # fmt: skip

#: dialect -> our name -> the key (dotted for nested objects) in that dialect
JSON_DIALECTS: dict[str, dict[str, str]] = {
    "nginx": {
        "time": "time_iso8601", "client": "remote_addr", "user": "remote_user", "method": "request_method",
        "uri": "request_uri", "protocol": "server_protocol", "status": "status", "bytes": "body_bytes_sent",
        "request_bytes": "request_length", "latency_s": "request_time", "referrer": "http_referer",
        "agent": "http_user_agent", "request_id": "request_id", "host": "host", "api_key_id": "api_key_id",
        "consumer": "consumer", "server": "server_addr",
    },
    "apigateway": {
        "time": "requestTime", "client": "ip", "user": "user", "method": "httpMethod", "uri": "path",
        "protocol": "protocol", "status": "status", "bytes": "responseLength", "latency_ms": "responseLatency",
        "agent": "userAgent", "request_id": "requestId", "host": "domainName",
        "api_key_id": "identity.apiKeyId", "consumer": "apiName",
    },
}  # fmt: skip
#: a key that tells the dialect
DIALECT_SIGNATURE: dict[str, str] = {"remote_addr": "nginx", "requestId": "apigateway"}


def _get(obj: Mapping[str, Any], dotted: str) -> Any:
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _ip(value: str | None, key: str) -> str | None:
    if value is None or value in ("-", ""):
        return None
    try:
        return normal_ip(value.split(",")[0].strip())  # X-Forwarded-For: the first hop
    except ValueError:
        raise BadRecord(f"{key}: {value!r} is not an IP address") from None


#: "+0700" -> its timezone, made once (timezone objects are immutable; +0000 is timezone.utc itself)
_CLF_ZONES: dict[str, timezone] = {}


def _clf_time(text: str) -> datetime:
    """``datetime.strptime(text, _CLF_TIME)``, about ten times faster for the usual form; ValueError as strptime."""
    match = _CLF_TIME_FAST.fullmatch(text)
    if match is not None:
        day, name, year, hour, minute, second, sign, hours, minutes = match.groups()
        month = _MONTHS.get(name)
        if month is not None:
            try:
                zone = _CLF_ZONES.get(text[-5:])  # the match ends with the zone: "+0700"
                if zone is None:
                    offset = timedelta(hours=int(hours), minutes=int(minutes))
                    zone = timezone(-offset if sign == "-" else offset)
                    if len(_CLF_ZONES) < 1024:  # a handful of zones in practice; bounded anyway
                        _CLF_ZONES[text[-5:]] = zone
                return datetime(int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone)
            except ValueError:
                pass  # out of range (day 32, hour 24 ...): strptime words the error
    return datetime.strptime(text, _CLF_TIME)


def _int(value: Any, key: str) -> int | None:
    if value is None or value in ("-", ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise BadRecord(f"{key}: {value!r} is not a non-negative integer")
    return int(value)


def _nanos(value: Any, key: str, scale: int) -> int | None:
    """Latency as nanoseconds; ``scale`` is nanoseconds per unit of the source."""
    if value is None or value in ("-", ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRecord(f"{key}: {value!r} is not a number")
    try:
        number = Decimal(str(value).split(",")[0].strip())  # nginx lists upstream times "0.1, 0.2"
    except InvalidOperation:
        raise BadRecord(f"{key}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0 or number > 10**7:
        raise BadRecord(f"{key}: {value!r} is not a plausible latency")
    return int(number * scale)


def _text(value: Any, key: str) -> str | None:
    if value is None or value in ("-", ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRecord(f"{key}: {value!r} must be a string")
    return str(value)


class WebAccessParser(Parser):
    """Access logs of web servers and API gateways (combined log format or JSON)."""

    name: ClassVar[str] = "web.access"
    dataset: ClassVar[str] = "web.access"
    description: ClassVar[str] = (
        "Web/API-gateway access logs: combined log format (+ key=value extras) or JSON (nginx, API gateway)."
    )

    def parse(self, record: RawRecord) -> list[Event]:
        line = record.data.rstrip("\r\n")
        values = self._json(line) if line.lstrip().startswith("{") else self._clf(line)
        return [self._event(values, record)]

    @staticmethod
    def _clf(line: str) -> dict[str, Any]:
        match = _CLF.fullmatch(line)
        if match is None:
            raise NotMyFormat("not a combined/common log format line")
        values: dict[str, Any] = {k: v for k, v in match.groupdict().items() if k != "rest"}
        try:
            values["time"] = _clf_time(match["time"])
        except ValueError:
            raise BadRecord(f"time [{match['time']}] is not dd/Mon/yyyy:HH:MM:SS +zzzz") from None
        parts = match["request"].split(" ")
        if len(parts) == 3:
            values["method"], values["uri"], values["protocol"] = parts
        elif match["request"] not in ("-", ""):
            values["uri"] = match["request"]  # garbage request lines (scanners) are kept verbatim
        rest = match["rest"] or ""
        extras = list(_PAIR.finditer(rest))
        if "".join(m[0] for m in extras).strip() != rest.strip():
            raise BadRecord(f"text after the user agent is not key=value pairs: {rest.strip()[:80]!r}")
        for pair in extras:
            key, value = pair[1], pair[2].strip('"')
            if key in CLF_EXTRAS:
                values[CLF_EXTRAS[key]] = value
        return values

    @staticmethod
    def _json(line: str) -> dict[str, Any]:
        obj = load_json_object(line)
        dialect = next((d for key, d in DIALECT_SIGNATURE.items() if key in obj), None)
        if dialect is None:
            raise NotMyFormat("JSON object without 'remote_addr' or 'requestId' is not an access log line")
        values = {ours: _get(obj, theirs) for ours, theirs in JSON_DIALECTS[dialect].items()}
        stamp = values.get("time")
        if not isinstance(stamp, str):
            raise BadRecord(f"key {JSON_DIALECTS[dialect]['time']!r} is missing or not a string")
        try:
            values["time"] = parse_ts(stamp)
        except EventValidationError:
            try:
                values["time"] = datetime.strptime(stamp, _CLF_TIME)  # API gateway $context.requestTime
            except ValueError:
                raise BadRecord(f"key {JSON_DIALECTS[dialect]['time']!r}: {stamp!r} is not a timestamp") from None
        return values

    def _event(self, values: dict[str, Any], record: RawRecord) -> Event:
        status = _int(values.get("status"), "status")
        if status is not None and not 100 <= status <= 599:
            raise BadRecord(f"status: {status} is not an HTTP status code")
        method, uri = _text(values.get("method"), "method"), _text(values.get("uri"), "uri")
        client = _ip(_text(values.get("client"), "client"), "client")
        latency = _nanos(values.get("latency_s"), "request_time", 1_000_000_000)
        if latency is None:
            latency = _nanos(values.get("latency_ms"), "responseLatency", 1_000_000)
        user = _text(values.get("user"), "user")
        fields: dict[str, Value] = {
            "event.kind": "event",
            "event.category": ("web", "network"),
            "event.type": ("access",),
            "event.action": "http_request",
            "event.dataset": self.dataset,
            "event.original": record.data,
            "network.protocol": "http",
        }
        optional: dict[str, Value | None] = {
            "source.ip": client,
            "client.ip": client,
            "server.ip": _ip(_text(values.get("server"), "server"), "server"),
            "user.name": user,
            "http.request.method": method,
            "url.original": uri,
            "http.version": (_text(values.get("protocol"), "protocol") or "").removeprefix("HTTP/") or None,
            "http.response.status_code": status,
            "http.response.bytes": _int(values.get("bytes"), "bytes"),
            "http.request.bytes": _int(values.get("request_bytes"), "request_length"),
            "http.request.referrer": _text(values.get("referrer"), "referrer"),
            "http.request.id": _text(values.get("request_id"), "request_id"),
            "user_agent.original": _text(values.get("agent"), "user agent"),
            "url.domain": _text(values.get("host"), "host"),
            "api.key.id": _text(values.get("api_key_id"), "api_key_id"),
            "api.consumer": _text(values.get("consumer"), "consumer"),
            "event.duration": latency,
        }
        if uri is not None:
            path, _, query = uri.partition("?")
            optional["url.path"] = path
            optional["url.query"] = query or None
        fields.update({k: v for k, v in optional.items() if v is not None})
        if status is not None:
            fields["event.outcome"] = "success" if status < 400 else "failure"
        if client:
            fields["related.ip"] = (client,)
        if user:
            fields["related.user"] = (user,)
        fields["message"] = f"{client or '-'} {method or '-'} {uri or '-'} {status if status is not None else '-'}"
        try:
            return Event(stable_id(self.name, record.source, record.offset, record.data), values["time"], fields)
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc


register_parser(WebAccessParser)
