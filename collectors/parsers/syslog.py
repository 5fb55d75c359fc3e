"""Syslog parser: RFC 5424 and RFC 3164 (BSD) messages, with sshd logins mapped to ECS.

One record is one syslog message as a transport delivers it (a UDP datagram,
a TCP frame, a line of a file).  The header fills ``log.syslog.*``,
``host.*`` and ``process.*``; RFC 5424 structured data lands in
``log.syslog.structured_data.<SD-ID>.<param>`` (a flattened field, so any
SD-ID is accepted).  sshd's ``Failed ...``/``Accepted ...`` lines become
authentication events (``event.action`` ``ssh_login``) with user and source.

RFC 3164 timestamps carry neither year nor zone: the year is the one that puts
the message closest to the time it was received, and the zone is the parser's
``bsd_timezone`` (UTC unless the device clocks are known to run on local time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collectors.base import BadRecord, CollectorError, Parser, RawRecord, register_parser
from store.errors import EventValidationError
from store.event import Event, Value, normal_ip, parse_ts, stable_id, utc

FACILITIES: tuple[str, ...] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES: tuple[str, ...] = (
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug",
)  # fmt: skip
MAX_PRI = 191  # facility 23 (local7) * 8 + severity 7

#: programs whose messages are sshd's (OpenSSH 9.8 split the per-session process out as sshd-session)
SSHD_PROGRAMS: frozenset[str] = frozenset({"sshd", "sshd-session"})
SSHD_DATASET = "linux.auth"

_PRI = re.compile(r"<(\d{1,3})>")
_RFC5424 = re.compile(r"([1-9]\d?) (\S+) (\S+) (\S+) (\S+) (\S+) ?")
MONTHS: tuple[str, ...] = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BSD_STAMP = re.compile(
    rf"({'|'.join(MONTHS)}) +(\d{{1,2}}) +(\d{{1,2}}):(\d\d):(\d\d)(?:\.(\d{{1,6}}))? +"
)
_ISO_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?) +")
_TAG = re.compile(r"([^\s\[\]:]{1,48})(?:\[([^\]\s]{0,128})\])?: ?")
_SD_NAME = re.compile(r'[\x21-\x7e]{1,32}')  # printable US-ASCII; '=', ' ', ']' and '"' excluded below

_SSH_FAILED = re.compile(
    r"Failed (\S+) for (invalid user )?(.*?) from ([0-9A-Fa-f:.]+) port (\d{1,5})(?: ssh2)?"
)
_SSH_ACCEPTED = re.compile(r"Accepted (\S+) for (.*?) from ([0-9A-Fa-f:.]+) port (\d{1,5})(?: ssh2)?")


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def parse_structured_data(text: str) -> tuple[dict[str, dict[str, list[str]]], str]:
    """Split RFC 5424 STRUCTURED-DATA off the front of ``text``.

    Returns ``{sd_id: {param: [values]}}`` and the rest (the MSG part).
    Raises :class:`BadRecord` with the column of the first syntax error.
    """
    elements: dict[str, dict[str, list[str]]] = {}
    if text.startswith("-"):
        return elements, _message_after(text, 1)
    if not text.startswith("["):
        raise BadRecord("RFC 5424 structured data must be '-' or start with '['")
    pos = 0
    while pos < len(text) and text[pos] == "[":
        pos += 1
        end = pos
        while end < len(text) and text[end] not in ' ]="':
            end += 1
        sd_id = text[pos:end]
        if not _SD_NAME.fullmatch(sd_id):
            raise BadRecord(f"structured data: bad SD-ID {sd_id!r} at column {pos + 1}")
        params = elements.setdefault(sd_id, {})
        pos = end
        while True:
            if pos >= len(text):
                raise BadRecord(f"structured data: element {sd_id!r} is not closed with ']'")
            if text[pos] == "]":
                pos += 1
                break
            if text[pos] != " ":
                raise BadRecord(f"structured data: expected ' ' or ']' at column {pos + 1}")
            pos += 1
            eq = text.find('="', pos)
            if eq < 0:
                raise BadRecord(f"structured data: parameter without '=\"' at column {pos + 1}")
            name = text[pos:eq]
            if not _SD_NAME.fullmatch(name) or any(c in name for c in ' ]"='):
                raise BadRecord(f"structured data: bad PARAM-NAME {name!r} at column {pos + 1}")
            pos = eq + 2
            value: list[str] = []
            while True:
                if pos >= len(text):
                    raise BadRecord(f"structured data: value of {sd_id}.{name} is not closed with '\"'")
                char = text[pos]
                if char == "\\" and pos + 1 < len(text) and text[pos + 1] in '"\\]':
                    value.append(text[pos + 1])  # RFC 5424 6.3.3: only these three are escaped
                    pos += 2
                elif char == '"':
                    pos += 1
                    break
                else:
                    value.append(char)
                    pos += 1
            params.setdefault(name, []).append("".join(value))
    return elements, _message_after(text, pos)


def _message_after(text: str, pos: int) -> str:
    rest = text[pos:]
    if rest and not rest.startswith(" "):
        raise BadRecord(f"structured data: expected ' ' before the message at column {pos + 1}")
    return rest[1:]


class SyslogParser(Parser):
    """RFC 5424 and RFC 3164 messages; sshd authentication lines mapped to ECS."""

    name: ClassVar[str] = "syslog"
    dataset: ClassVar[str] = "syslog"
    description: ClassVar[str] = (
        "Syslog RFC 5424 (with structured data) and RFC 3164/BSD; sshd logins become authentication events."
    )

    def __init__(self, bsd_timezone: str | tzinfo = "UTC") -> None:
        if isinstance(bsd_timezone, str):
            try:
                bsd_timezone = ZoneInfo(bsd_timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise CollectorError(f"syslog parser: unknown time zone {bsd_timezone!r}") from exc
        self.bsd_timezone: tzinfo = bsd_timezone

    # entry point ------------------------------------------------------------------
    def parse(self, record: RawRecord) -> list[Event]:
        text = record.data.rstrip("\r\n\x00")
        pri_match = _PRI.match(text)
        if pri_match is None:
            raise BadRecord("no syslog PRI: a message starts with '<' facility*8+severity '>'")
        pri = int(pri_match[1])
        if pri > MAX_PRI:
            raise BadRecord(f"syslog PRI {pri} is out of range (0-{MAX_PRI})")
        body = text[pri_match.end() :]
        fields: dict[str, Value] = {
            "event.kind": "event",
            "event.type": ("info",),
            "event.dataset": self.dataset,
            "event.original": record.data,
            "event.severity": pri & 7,
            "log.syslog.priority": pri,
            "log.syslog.facility.code": pri >> 3,
            "log.syslog.facility.name": FACILITIES[pri >> 3],
            "log.syslog.severity.code": pri & 7,
            "log.syslog.severity.name": SEVERITIES[pri & 7],
            "log.level": SEVERITIES[pri & 7],
        }
        header = _RFC5424.match(body)
        if header is not None:
            timestamp, message = self._rfc5424(header, body, record, fields)
        else:
            timestamp, message = self._rfc3164(body, record, fields)
        if message:
            fields["message"] = message
        program = fields.get("log.syslog.appname")
        if isinstance(program, str) and program in SSHD_PROGRAMS:
            fields["event.dataset"] = SSHD_DATASET
            fields.update(_sshd(message))
        try:
            event = Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc
        return [event]

    # RFC 5424 ---------------------------------------------------------------------
    def _rfc5424(
        self, header: re.Match[str], body: str, record: RawRecord, fields: dict[str, Value]
    ) -> tuple[datetime, str]:
        version, stamp, hostname, appname, procid, msgid = header.groups()
        if version != "1":
            raise BadRecord(f"syslog protocol version {version} is not supported (RFC 5424 is version 1)")
        fields["log.syslog.version"] = version
        if stamp == "-":
            timestamp = utc(record.received)
        else:
            try:
                timestamp = parse_ts(stamp)
            except EventValidationError as exc:
                raise BadRecord(f"RFC 5424 TIMESTAMP {stamp!r} is not RFC 3339") from exc
        self._header_fields(fields, _nil(hostname), _nil(appname), _nil(procid))
        if _nil(msgid):
            fields["log.syslog.msgid"] = msgid
        elements, message = parse_structured_data(body[header.end() :] if header[0].endswith(" ") else "")
        for sd_id, params in elements.items():
            for param, values in params.items():
                key = f"log.syslog.structured_data.{sd_id}.{param}"
                fields[key] = values[0] if len(values) == 1 else tuple(values)
        return timestamp, message.removeprefix("\ufeff")  # RFC 5424 marks UTF-8 MSG with a BOM

    # RFC 3164 ---------------------------------------------------------------------
    def _rfc3164(self, body: str, record: RawRecord, fields: dict[str, Value]) -> tuple[datetime, str]:
        bsd = _BSD_STAMP.match(body)
        if bsd is not None:
            timestamp = self._bsd_time(bsd, utc(record.received))
            fields["event.timezone"] = str(self.bsd_timezone)
            rest = body[bsd.end() :]
        else:
            iso = _ISO_STAMP.match(body)
            if iso is None:
                raise BadRecord(
                    "neither an RFC 5424 header ('<PRI>1 TIMESTAMP ...') nor an RFC 3164 timestamp "
                    "('<PRI>Mmm dd hh:mm:ss ...') follows the PRI"
                )
            try:
                timestamp = datetime.fromisoformat(iso[1].replace("Z", "+00:00"))
            except ValueError as exc:
                raise BadRecord(f"timestamp {iso[1]!r} is not a valid date") from exc
            if timestamp.tzinfo is None:
                timestamp = timestamp.replace(tzinfo=self.bsd_timezone)
            rest = body[iso.end() :]
        hostname: str | None = None
        first, _, after = rest.partition(" ")
        # Some senders leave the HOSTNAME out: then the first word is already the TAG.
        if first and not _TAG.fullmatch(first + " ") and after:
            hostname, rest = first, after
        tag = _TAG.match(rest)
        appname = procid = None
        if tag is not None:
            appname, procid = tag[1], tag[2] or None
            rest = rest[tag.end() :]
        self._header_fields(fields, hostname, appname, procid)
        return timestamp, rest

    def _bsd_time(self, match: re.Match[str], received: datetime) -> datetime:
        month, day = MONTHS.index(match[1]) + 1, int(match[2])
        hour, minute, second = int(match[3]), int(match[4]), int(match[5])
        micro = int((match[6] or "0").ljust(6, "0"))
        candidates = []
        for year in (received.year - 1, received.year, received.year + 1):
            try:
                local = datetime(year, month, day, hour, minute, second, micro, tzinfo=self.bsd_timezone)
            except ValueError:
                continue  # 29 Feb outside a leap year, 31 Apr, hour 25 ...
            candidates.append(local.astimezone(UTC))
        if not candidates:
            raise BadRecord(f"RFC 3164 timestamp {match[0].strip()!r} is not a valid date")
        # The year is not sent: the one nearest to the receive time is right across New Year either way.
        return min(candidates, key=lambda ts: abs(ts - received))

    @staticmethod
    def _header_fields(
        fields: dict[str, Value], hostname: str | None, appname: str | None, procid: str | None
    ) -> None:
        if hostname:
            fields["log.syslog.hostname"] = hostname
            fields["host.hostname"] = hostname
            fields["host.name"] = hostname
        if appname:
            fields["log.syslog.appname"] = appname
            fields["process.name"] = appname
            fields["event.provider"] = appname
        if procid:
            fields["log.syslog.procid"] = procid
            if procid.isdigit():
                fields["process.pid"] = int(procid)


def _ip(text: str) -> str | None:
    try:
        return normal_ip(text)
    except ValueError:
        return None


def _sshd(message: str) -> dict[str, Value]:
    """ECS authentication fields for sshd's login lines; nothing for its other messages."""
    failed = _SSH_FAILED.match(message)
    accepted = None if failed else _SSH_ACCEPTED.match(message)
    if failed is not None:
        user, ip, port, outcome, types = failed[3], failed[4], failed[5], "failure", ("info",)
    elif accepted is not None:
        user, ip, port, outcome, types = accepted[2], accepted[3], accepted[4], "success", ("start",)
    else:
        return {}
    out: dict[str, Value] = {
        "event.category": ("authentication",),
        "event.type": types,
        "event.action": "ssh_login",
        "event.outcome": outcome,
        "network.protocol": "ssh",
    }
    if user:
        out["user.name"] = user
        out["related.user"] = (user,)
    address = _ip(ip)
    if address is not None:
        out["source.ip"] = address
        out["source.port"] = int(port)
        out["related.ip"] = (address,)
    return out


register_parser(SyslogParser)
