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
from collectors.names import KnownNames
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


def _simple_extension(text: str) -> dict[str, str] | None:
    """:func:`split_extension` for the usual extension, or None for any other.

    The usual extension has no backslash and single spaces between its words, the first word
    a ``key=``.  Every word that starts with ``key=`` is then a mark, and a value is the words
    up to the next mark, joined by their spaces -- what the marks' regex finds, without it.
    Anything else (escapes, tabs, doubled or trailing blanks, a first word that is not a key)
    returns None and takes the general path, which also words the errors.
    """
    if "\\" in text:
        return None
    words = text.split(" ")
    if words != text.split():
        return None
    out: dict[str, str] = {}
    key = ""
    value: list[str] = []
    known = _KEYS.seen
    for word in words:
        name, eq, rest = word.partition("=")
        if eq and (name in known or _KEYS.matches(name)):
            if key:
                out[key] = " ".join(value)
            key, value = name, [rest]
        elif key:
            value.append(word)
        else:
            return None  # text before the first key: the general path says so
    if key:
        out[key] = " ".join(value)
    return out


#: extension keys of the form the marks' key pattern has, remembered once met
_KEYS = KnownNames(r"[A-Za-z0-9_.\[\]-]+")


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
        line = record.data.rstrip("\r\n")
        start = line.find("CEF:")
        if start < 0:
            raise NotMyFormat("no 'CEF:' payload")
        header, extension = split_header(line[start + 4 :])
        version, vendor, product, device_version, signature, name, severity_text = header
        if not version.isdigit():
            raise BadRecord(f"CEF version {version!r} is not a number")
        if not signature or not name:
            raise BadRecord("CEF Signature ID and Name must not be empty")
        severity_text = severity_text.strip()
        if severity_text.isdigit() and int(severity_text) <= 10:
            severity = int(severity_text)
        elif severity_text.lower() in SEVERITY_WORDS:
            severity = SEVERITY_WORDS[severity_text.lower()]
        else:
            raise BadRecord(f"CEF severity {severity_text!r} is not 0-10 or Low/Medium/High/Very-High")
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
            "event.original": record.data,
            "rule.id": signature,
            "rule.name": name,
            "observer.vendor": vendor,
            "observer.product": product,
            "labels.cef_version": version,
            "labels.device_version": device_version,
            "message": name,
        }
        for key, value in ext.items():
            target = EXTENSION_FIELDS.get(key) or _label(key)
            if not value or key in TIME_KEYS:
                continue
            if target in IP_FIELDS:
                try:
                    value = normal_ip(value)
                except ValueError:
                    raise BadRecord(f"extension {key!r}: {value!r} is not an IP address") from None
            if target in INT_FIELDS and not value.isdigit():
                raise BadRecord(f"extension {key!r}: {value!r} is not a non-negative integer")
            if target == "network.transport":
                value = value.lower()
            if target == "event.outcome":
                value = {"success": "success", "failure": "failure"}.get(value.lower(), "unknown")
            fields[target] = (value,) if target == "host.ip" else value
        if ext.get("msg"):
            fields["message"] = f"{name}: {ext['msg']}"
        ips = tuple(dict.fromkeys(str(fields[k]) for k in ("source.ip", "destination.ip") if k in fields))
        if ips:
            fields["related.ip"] = ips
        try:
            return [Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)]
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc


register_parser(CefParser)
