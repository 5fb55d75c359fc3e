"""ArcSight Common Event Format (CEF) parser, bare lines or inside a syslog message.

``CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension``

Anything before the first ``CEF:`` (a syslog header) is ignored.  Header fields escape ``|`` and
``\\`` with a backslash; extension values escape ``=``, ``\\`` and newlines
(``\\n``, ``\\r``).  An extension value runs until the next `` key=``.

The extension keys of :data:`EXTENSION_FIELDS` are mapped to ECS (the mapping
follows Elastic's CEF module); the others are kept as ``labels.cef_<key>``.
Severity is 0-10 (or Low/Medium/High/Very-High, mapped to 3/6/8/10) and goes
to ``event.severity``; the signature id to ``event.code`` and ``rule.id``, the
name to ``rule.name`` and ``message``.  ``rt``/``end``/``start`` (epoch
milliseconds or ``MMM dd yyyy HH:mm:ss``) give the time; without one the
receive time is used.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from store.errors import EventValidationError
from store.event import Event, Value, normal_ip, parse_ts, stable_id

#: CEF extension key -> event field
EXTENSION_FIELDS: dict[str, str] = {
    "src": "source.ip", "spt": "source.port", "smac": "source.mac", "shost": "source.domain",
    "dst": "destination.ip", "dpt": "destination.port", "dhost": "destination.domain",
    "suser": "user.name", "duser": "user.target.name", "suid": "user.id",
    "proto": "network.transport", "app": "network.protocol", "in": "source.bytes", "out": "destination.bytes",
    "act": "event.action", "outcome": "event.outcome", "request": "url.original",
    "requestMethod": "http.request.method", "requestClientApplication": "user_agent.original",
    "fname": "file.name", "filePath": "file.path", "fileHash": "file.hash.sha256",
    "sproc": "process.name", "spid": "process.pid", "dproc": "process.name", "dpid": "process.pid",
    "msg": "message", "cat": "rule.category", "externalId": "labels.cef_externalId",
    "dvchost": "host.name", "dvc": "host.ip", "cnt": "labels.cef_cnt",
}  # fmt: skip
#: fields whose value must be an address
IP_FIELDS: frozenset[str] = frozenset({"source.ip", "destination.ip", "host.ip"})
#: fields whose value must be a non-negative integer
INT_FIELDS: frozenset[str] = frozenset(
    {"source.port", "destination.port", "source.bytes", "destination.bytes", "process.pid"}
)
SEVERITY_WORDS: dict[str, int] = {"unknown": 0, "low": 3, "medium": 6, "high": 8, "very-high": 10}
TIME_KEYS: tuple[str, ...] = ("rt", "end", "start")

_HEADER_FIELD = re.compile(r"((?:[^|\\]|\\.)*)\|")
_EXT_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z0-9_.\[\]-]+)=")
_HEADER_UNESCAPE = re.compile(r"\\([|\\])")
_EXT_UNESCAPE = re.compile(r"\\([=\\nr])")
_EXT_ESCAPES = {"=": "=", "\\": "\\", "n": "\n", "r": "\r"}
_TIME_FORMATS = ("%b %d %Y %H:%M:%S", "%b %d %Y %H:%M:%S.%f", "%b %d %H:%M:%S %Y")


def split_header(payload: str) -> tuple[list[str], str]:
    """The seven header fields (unescaped) and the raw extension."""
    if "\\" not in payload:  # nothing escaped (the usual header): the first seven '|' end the fields
        parts = payload.split("|", 7)
        if len(parts) == 8:
            return parts[:7], parts[7]
    fields: list[str] = []
    pos = 0
    for _ in range(7):
        match = _HEADER_FIELD.match(payload, pos)
        if match is None:
            raise BadRecord(f"CEF header has {len(fields)} of 7 '|'-separated fields")
        field = match[1]
        fields.append(_HEADER_UNESCAPE.sub(r"\1", field) if "\\" in field else field)
        pos = match.end()
    return fields, payload[pos:]


#: a mark of a plain extension once a space is put in front of it: a space, a key, '='
_PLAIN_MARK = re.compile(r" ([A-Za-z0-9_.\[\]-]+)=")


def _simple_extension(text: str) -> dict[str, str] | None:
    """:func:`split_extension` for the usual extension, or None for any other.

    The usual extension has no backslash, no whitespace but single spaces between its words,
    and starts with a ``key=``.  With a space put in front, every mark (a ``key=`` at the start
    or after whitespace) is then a space, a key and '=', so one ``re.split`` gives
    ``['', key, value, key, value, ...]``: the values the marks' regex finds, which need no
    unescaping and no ``rstrip`` (the space before each key goes with its mark).  Anything else
    (escapes, tabs or other whitespace -- ``isprintable`` is false for all of it but the space --,
    doubled or trailing spaces, text before the first key, no key) returns None and takes the
    general path, which also words the errors.
    """
    if "\\" in text or "  " in text or text.endswith(" ") or not text.isprintable():
        return None
    parts = _PLAIN_MARK.split(" " + text)
    if parts[0]:  # text before the first key, or no key at all
        return None
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def split_extension(text: str) -> dict[str, str]:
    """The ``key=value`` pairs of a CEF extension, values unescaped."""
    simple = _simple_extension(text)
    if simple is not None:
        return simple
    marks = [m for m in _EXT_KEY.finditer(text) if m.start() == 0 or text[m.start() - 1] != "\\"]
    if text.strip() and (not marks or text[: marks[0].start()].strip()):
        raise BadRecord(f"CEF extension does not start with key=value: {text[:60]!r}")
    out: dict[str, str] = {}
    if not marks:
        return out
    for mark, nxt in zip(marks, [*marks[1:], None], strict=True):
        raw = text[mark.end() : nxt.start() if nxt is not None else len(text)].rstrip()
        out[mark[1]] = _EXT_UNESCAPE.sub(lambda m: _EXT_ESCAPES[m[1]], raw) if "\\" in raw else raw
    return out


@functools.lru_cache(maxsize=1024)  # vendors' extension keys are few
def _label(key: str) -> str:
    """The field of an extension key CitySOC does not map: ``labels.cef_<key>``."""
    return f"labels.cef_{re.sub(r'[^A-Za-z0-9_]', '_', key)}"


# What parse() does with a (non-empty) extension value, by the key's kind: keep the text, skip it
# (a time key: it gave the timestamp), check an address (kept as is, or as a one-item tuple for
# the host.ip array), check and convert a number, lower-case it, map it to an outcome.
_TEXT, _SKIP, _IP, _IP_ARRAY, _INT, _LOWER, _OUTCOME = range(7)
_OUTCOMES: dict[str, str] = {"success": "success", "failure": "failure"}  # anything else is "unknown"


def _key_spec(key: str) -> tuple[str, int]:
    """The field an extension key goes to and what is done with its value (one of the kinds above)."""
    target = EXTENSION_FIELDS.get(key) or _label(key)
    if key in TIME_KEYS:
        return target, _SKIP
    if target in IP_FIELDS:
        return target, _IP_ARRAY if target == "host.ip" else _IP
    if target in INT_FIELDS:
        return target, _INT
    if target == "network.transport":
        return target, _LOWER
    if target == "event.outcome":
        return target, _OUTCOME
    return target, _TEXT


#: extension key -> :func:`_key_spec`, worked out once per key: the mapped keys up front, the
#: others (labels) as they are met, while there is room (keys come from the input)
_KEY_SPECS: dict[str, tuple[str, int]] = {key: _key_spec(key) for key in (*EXTENSION_FIELDS, *TIME_KEYS)}
_KEY_SPECS_SIZE = 4096

#: address text -> normal_ip(text): addresses repeat heavily, and a dict lookup costs less than
#: normal_ip's calls (itself cached).  Bounded: the input names them; only good addresses are kept.
_ADDRESSES: dict[str, str] = {}
_ADDRESSES_SIZE = 65_536

#: severity text as the usual headers write it -> event.severity (what the general rule gives)
_SEVERITIES: dict[str, int] = {
    **{str(n): n for n in range(11)},
    **SEVERITY_WORDS,
    **{word.title(): n for word, n in SEVERITY_WORDS.items()},
    **{word.upper(): n for word, n in SEVERITY_WORDS.items()},
}


def _time(value: str, key: str) -> datetime:
    if value.isdigit():
        try:
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        except (OverflowError, ValueError, OSError):
            raise BadRecord(f"extension {key!r}: {value!r} is out of range") from None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        return parse_ts(value)
    except EventValidationError:
        raise BadRecord(f"extension {key!r}: {value!r} is not epoch milliseconds or 'MMM dd yyyy HH:mm:ss'") from None


class CefParser(Parser):
    """CEF events from firewalls, IDS, camera platforms and other SIEM-speaking devices."""

    name: ClassVar[str] = "cef"
    dataset: ClassVar[str] = "cef"
    description: ClassVar[str] = "ArcSight CEF lines, bare or in a syslog message; extension mapped to ECS."

    def parse(self, record: RawRecord) -> list[Event]:
        data = record.data
        line = data.rstrip("\r\n")
        start = line.find("CEF:")
        if start < 0:
            raise NotMyFormat("no 'CEF:' payload")
        payload = line[start + 4 :]
        parts = payload.split("|", 7) if "\\" not in payload else ()
        if len(parts) == 8:  # nothing escaped, all seven '|' there: split_header's own fast path, inlined
            version, vendor, product, device_version, signature, name, severity_text, extension = parts
        else:
            header, extension = split_header(payload)
            version, vendor, product, device_version, signature, name, severity_text = header
        if not version.isdigit():
            raise BadRecord(f"CEF version {version!r} is not a number")
        if not signature or not name:
            raise BadRecord("CEF Signature ID and Name must not be empty")
        severity = _SEVERITIES.get(severity_text)  # the usual ones; the general rule below for the others
        if severity is None:
            severity_text = severity_text.strip()
            if severity_text.isdigit() and int(severity_text) <= 10:
                severity = int(severity_text)
            elif severity_text.lower() in SEVERITY_WORDS:
                severity = SEVERITY_WORDS[severity_text.lower()]
            else:
                raise BadRecord(f"CEF severity {severity_text!r} is not 0-10 or Low/Medium/High/Very-High")
        ext = _simple_extension(extension)  # split_extension's fast path, called directly
        if ext is None:
            ext = split_extension(extension)
        timestamp = record.received
        for key in TIME_KEYS:
            if key in ext:
                timestamp = _time(ext[key], key)
                break
        fields: dict[str, Value] = {
            "event.kind": "alert" if severity >= 7 else "event",
            "event.category": ("host",),
            "event.type": ("info",),
            "event.module": "cef",
            "event.dataset": self.dataset,
            "event.code": signature,
            "event.severity": severity,
            "event.original": data,
            "rule.id": signature,
            "rule.name": name,
            "observer.vendor": vendor,
            "observer.product": product,
            "labels.cef_version": version,
            "labels.device_version": device_version,
            "message": name,
        }
        specs = _KEY_SPECS
        for key, text in ext.items():
            if not text:
                continue
            spec = specs.get(key)
            if spec is None:
                spec = _key_spec(key)
                if len(specs) < _KEY_SPECS_SIZE:
                    specs[key] = spec
            target, kind = spec
            value: Value = text
            if kind != _TEXT:
                if kind == _SKIP:
                    continue
                if kind == _INT:
                    if not text.isdigit():
                        raise BadRecord(f"extension {key!r}: {text!r} is not a non-negative integer")
                    try:
                        value = int(text)  # what Event() makes of the digits; an int it keeps without a call
                    except ValueError:
                        value = text  # digits int() refuses ('²', too many): Event() raises for them, as before
                elif kind == _LOWER:
                    value = text.lower()
                elif kind == _OUTCOME:
                    value = _OUTCOMES.get(text.lower(), "unknown")
                else:  # _IP or _IP_ARRAY
                    address = _ADDRESSES.get(text)
                    if address is None:
                        try:
                            address = normal_ip(text)
                        except ValueError:
                            raise BadRecord(f"extension {key!r}: {text!r} is not an IP address") from None
                        if len(_ADDRESSES) < _ADDRESSES_SIZE:
                            _ADDRESSES[text] = address
                    value = address if kind == _IP else (address,)
            fields[target] = value
        msg = ext.get("msg")
        if msg:
            fields["message"] = f"{name}: {msg}"
        # related.ip: the source and destination addresses, once each, source first
        source_ip = fields.get("source.ip")
        destination_ip = fields.get("destination.ip")
        if source_ip is None:
            if destination_ip is not None:
                fields["related.ip"] = (str(destination_ip),)
        elif destination_ip is None or destination_ip == source_ip:
            fields["related.ip"] = (str(source_ip),)
        else:
            fields["related.ip"] = (str(source_ip), str(destination_ip))
        try:
            return [Event(stable_id(self.name, record.source, record.offset, data), timestamp, fields)]
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc


register_parser(CefParser)
