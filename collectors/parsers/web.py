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

#: The usual combined-log line (nginx ``combined`` + key=value extras, as the module docstring shows), for
#: :meth:`WebAccessParser._usual_clf`.  Every line it matches, _CLF matches with the same groups: each part
#: is a narrower form of _CLF's (ASCII digits, an IP-ish client, "METHOD /path HTTP/version" without quotes
#: or backslashes, referrer and agent present and unescaped, extras exactly " key=value" each, the value
#: without quotes or whitespace, so _PAIR would find each pair as it is).  Groups: client, user, the time's day,
#: month, year, hour, minute, second and zone, method, uri, HTTP version, status, bytes, referrer, agent, extras.
#: The quantifiers are possessive (``++``, no backtracking, cheaper): each class excludes the character after it.
_CLF_USUAL = re.compile(
    r"([0-9A-Fa-f.:]++) \S++ (\S++) \[([0-9][0-9])/([A-Z][a-z][a-z])/([0-9]{4}):([0-9][0-9]):([0-9][0-9]):([0-9][0-9]) "
    r'([+-][0-9][0-9][0-5][0-9])\] "([A-Z]++) (/[^ "\\]*+) HTTP/([^ "\\]++)" ([1-5][0-9][0-9]) ([0-9]++|-) '
    r'"([^"\\]*+)" "([^"\\]*+)"((?: [A-Za-z_][A-Za-z0-9_]*+=[^\s"]*+)*+)'
)
#: the (key, value) pairs of _CLF_USUAL's extras group: what _PAIR finds there, with a cheaper pattern
_USUAL_PAIR = re.compile(r" ([^=]++)=([^ ]*+)")
#: "00".."99" -> its int: a dict lookup is cheaper than an int() call, for the time's two-digit parts
_TWO_DIGITS: dict[str, int] = {f"{n:02d}": n for n in range(100)}
#: request time text ("0.012") -> _nanos(text, "request_time", 10**9), for the values _nanos accepted; they
#: repeat heavily (nginx writes milliseconds).  Bounded: the input names them.
_REQUEST_TIME_NS: dict[str, int] = {}
_REQUEST_TIME_NS_SIZE = 8192

#: trailing key=value names -> the name used below (as in the nginx JSON dialect); others are ignored.
#: _usual_clf reads them by key: a new one here needs a line there (and the fast-path test catches it).
CLF_EXTRAS: dict[str, str] = {
    "rt": "latency_s", "request_time": "latency_s", "request_id": "request_id",
    "api_key_id": "api_key_id", "consumer": "consumer", "host": "host",
}  # fmt: skip

#: the extras _event writes after the user agent, in its order: (key in the line, field); CLF_EXTRAS keeps
#: these keys' names as they are
_CLF_EXTRA_FIELDS = (("host", "url.domain"), ("api_key_id", "api.key.id"), ("consumer", "api.consumer"))

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
        usual = _CLF_USUAL.fullmatch(line)  # never a JSON line: it starts with an address
        if usual is not None:
            event = self._usual_clf(usual, record)
            if event is not None:
                return [event]
        values = self._json(line) if line.lstrip().startswith("{") else self._clf(line)
        return [self._event(values, record)]

    def _head(self, record: RawRecord) -> dict[str, Value]:
        """The fields every access-log event starts with (both paths: _usual_clf and _event)."""
        return {
            "event.kind": "event",
            "event.category": ("web", "network"),
            "event.type": ("access",),
            "event.action": "http_request",
            "event.dataset": self.dataset,
            "event.original": record.data,
            "network.protocol": "http",
        }

    def _usual_clf(self, match: re.Match[str], record: RawRecord) -> Event | None:
        """``self._event(self._clf(line), record)`` for a line :data:`_CLF_USUAL` matched, without its
        dict of values and per-field helper calls: the same event (fields in the same order) or the same
        exception.  None (the caller then takes the general path, which words any error) for what this
        leaves to it: a zone _clf_time has not made yet, a time out of range, a client that is not an
        address, both ``rt`` and ``request_time`` given.

        What _event's helpers reduce to here: the pattern's parts are never None (referrer and agent are
        present) and never "" except the referrer, agent and extras (``_text``: "-" and "" are absent);
        method, uri and version are never "-"; status is 100..599; bytes are ASCII digits or "-".
        """
        (client, user, day, month_name, year, hour, minute, second, zone_text, method, uri, version, status_text,
         bytes_text, referrer, agent, rest) = match.groups()  # fmt: skip
        month = _MONTHS.get(month_name)
        zone = _CLF_ZONES.get(zone_text)
        if month is None or zone is None:
            return None
        try:  # as _clf_time does (microsecond 0 and tzinfo passed by position: no keyword dict to make)
            time = datetime(int(year), month, _TWO_DIGITS[day], _TWO_DIGITS[hour], _TWO_DIGITS[minute],
                            _TWO_DIGITS[second], 0, zone)  # fmt: skip
            client = normal_ip(client)  # as _ip: no comma, no space, not "-"
        except ValueError:
            return None
        extras: dict[str, str] = {}
        if rest:
            extras = dict(_USUAL_PAIR.findall(rest))  # as _clf: a later pair wins; values hold no quote to strip
            if "rt" in extras and "request_time" in extras:
                return None  # both are latency_s: the later one counts, which _clf knows
        # the order _event raises in: latency (may raise BadRecord, as _event would here), then bytes
        latency: int | None = None
        request_time = extras.get("rt", extras.get("request_time"))
        if request_time:
            latency = _REQUEST_TIME_NS.get(request_time)
            if latency is None:
                latency = _nanos(request_time, "request_time", 1_000_000_000)
                if latency is not None and len(_REQUEST_TIME_NS) < _REQUEST_TIME_NS_SIZE:
                    _REQUEST_TIME_NS[request_time] = latency
        status = int(status_text)
        fields = self._head(record)
        fields["source.ip"] = fields["client.ip"] = client
        # then _event's optional fields in its order, each only when _text & co would not give None
        if user != "-":
            fields["user.name"] = user
        fields["http.request.method"] = method
        fields["url.original"] = uri
        fields["http.version"] = version
        fields["http.response.status_code"] = status
        if bytes_text != "-":
            fields["http.response.bytes"] = int(bytes_text)
        if referrer and referrer != "-":
            fields["http.request.referrer"] = referrer
        if rest:
            value = extras.get("request_id")
            if value and value != "-":  # None, "" and "-" are absent
                fields["http.request.id"] = value
        if agent and agent != "-":
            fields["user_agent.original"] = agent
        if rest:
            for key, field in _CLF_EXTRA_FIELDS:
                value = extras.get(key)
                if value and value != "-":
                    fields[field] = value
        if latency is not None:
            fields["event.duration"] = latency
        path, _, query = uri.partition("?")
        fields["url.path"] = path
        if query:
            fields["url.query"] = query
        fields["event.outcome"] = "success" if status < 400 else "failure"
        fields["related.ip"] = (client,)
        if user != "-":
            fields["related.user"] = (user,)
        fields["message"] = f"{client} {method} {uri} {status_text}"  # status_text is str(status): no leading 0
        try:
            return Event(stable_id(self.name, record.source, record.offset, record.data), time, fields)
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc

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
        fields = self._head(record)
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
