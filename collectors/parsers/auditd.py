"""Linux audit parser: raw auditd log lines and Microsoft OMS (auoms) audit records.

Two line shapes are read, with or without a syslog prefix in front of ``type=``::

    type=SYSCALL msg=audit(1700000000.123:4242): arch=c000003e syscall=59 success=yes ... comm="sh" exe="/bin/sh"
    type=AUOMS_EXECVE audit(1652292621.986:84138): syscall=execve success=no ... proctitle=/usr/bin/java -jar x

Values are ``key=value`` pairs.  auditd writes untrusted strings either quoted
or hex-encoded: the keys in :data:`HEX_KEYS` are decoded when unquoted hex
(``proctitle`` and ``EXECVE`` arguments are NUL-separated argv).  auoms writes
some values unquoted with spaces (``proctitle``) and quotes ``cmdline`` without
escaping the quotes inside, so a value runs until the next `` key=`` rather than
the next blank or quote.  auoms ``cmdline`` (the full argv) is preferred over
its truncated ``proctitle``.

One event per record, ``event.sequence`` = the audit serial.  The kernel writes
the records of one audit event (SYSCALL, EXECVE, CWD, PATH, PROCTITLE ...)
together, SYSCALL first; the parser remembers the process context of the last
:data:`JOIN_WINDOW` serials per source so the later records of the same serial
carry ``process.*``/``user.*`` too ("joined by serial where possible": a
collector that restarts in the middle of an audit event loses the join, not the
records).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from store.errors import EventValidationError
from store.event import Event, Value, stable_id

#: record type -> (event.category, event.type, event.action)
RECORD_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "SYSCALL": (("process",), ("info",), "syscall"),
    "EXECVE": (("process",), ("start",), "executed"),
    "AUOMS_EXECVE": (("process",), ("start",), "executed"),
    "AUOMS_SYSCALL": (("process",), ("info",), "syscall"),
    "USER_LOGIN": (("authentication",), ("start",), "logged-in"),
    "USER_AUTH": (("authentication",), ("info",), "authenticated"),
    "USER_START": (("session",), ("start",), "session-opened"),
    "USER_END": (("session",), ("end",), "session-closed"),
    "USER_CMD": (("process",), ("start",), "ran-command"),
    "ADD_USER": (("iam",), ("user", "creation"), "added-user-account"),
    "DEL_USER": (("iam",), ("user", "deletion"), "deleted-user-account"),
    "USER_CHAUTHTOK": (("iam",), ("user", "change"), "changed-password"),
    "PATH": (("file",), ("info",), "path"),
    "CWD": (("file",), ("info",), "cwd"),
    "PROCTITLE": (("process",), ("info",), "proctitle"),
    "CONFIG_CHANGE": (("configuration",), ("change",), "changed-audit-configuration"),
    "SERVICE_START": (("process",), ("start",), "service-started"),
    "SERVICE_STOP": (("process",), ("end",), "service-stopped"),
}
#: keys whose unquoted value is hex-encoded text (with the EXECVE arguments a0, a1 ...); _own_fields decodes
#: those it reads, with _text/_decoded (no field is made from ``data``)
HEX_KEYS: frozenset[str] = frozenset({"proctitle", "comm", "exe", "cwd", "name", "cmd", "acct", "data"})
#: serials remembered per source for the join
JOIN_WINDOW = 64
#: the ids auditd writes for "not set"
UNSET_IDS: frozenset[str] = frozenset({"4294967295", "-1", "unset", "(none)"})

_HEADER = re.compile(r"type=(?P<type>[A-Z0-9_]+) (?:msg=)?audit\((?P<ts>\d+(?:\.\d+)?):(?P<serial>\d+)\):\s?")
_KEY = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=")
# auoms quotes cmdline without escaping inner quotes: a value ends at the quote before the next key
_QUOTED = re.compile(r'"(.*?)"(?=\s+[A-Za-z_][A-Za-z0-9_]*=|\s*$)', re.S)
_QUOTED_KEY = re.compile(r'(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)="')
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# the usual body (see _simple_pairs): key=value tokens, single blanks between them; a value is printable ASCII
# without blanks, quotes or "=", quoted or not.  Possessive: nothing it has taken can be part of a match.
_USUAL_PAIR = r'[A-Za-z_][A-Za-z0-9_]*+=(?:"[!#-<>-~]*+"|[!#-<>-~]*+)'
_USUAL_BODY = re.compile(rf"{_USUAL_PAIR}(?: {_USUAL_PAIR})*+")
_PROCESS_KEYS = ("process.pid", "process.parent.pid", "process.name", "process.executable",
                 "process.command_line", "process.working_directory", "user.id", "user.name", "user.audit.id",
                 "user.effective.id")  # fmt: skip
#: values that leave a field out (besides an absent key and an empty value): auditd's "not set" ids and "?"
_UNSET: frozenset[str] = UNSET_IDS | {"?"}


def _simple_pairs(body: str) -> dict[str, str] | None:
    """:func:`split_pairs` of the usual body, or None for any other.

    The usual body (what auditd writes for SYSCALL and most records) is ``key=value`` tokens
    separated by single blanks, each value printable ASCII without blanks, quotes or ``=``, either
    quoted or not (:data:`_USUAL_BODY`).  For it, cutting at the blanks is exactly what
    :func:`split_pairs`' marks do, and with the quotes dropped and each token's one ``=`` made a
    blank, cutting at the blanks gives key, value, key, value ... with no Python code per token.
    Anything else (auoms' unquoted values with blanks, quotes inside values, tabs, non-ASCII text,
    a token that is not ``key=``, an empty body) returns None and takes the general path.
    """
    if _USUAL_BODY.fullmatch(body) is None:
        return None
    words = iter(body.replace('"', "").replace("=", " ").split(" "))
    return dict(zip(words, words, strict=True))  # one iterator twice: (key, value) for consecutive words


def split_pairs(body: str) -> dict[str, str]:
    """The ``key=value`` pairs of a record body; quotes removed, the last duplicate wins."""
    pairs: dict[str, str] = {}
    marks = list(_KEY.finditer(body))
    pos = 0
    # finditer's matches do not overlap: the next mark starts at or after this one's end
    starts = [m.start() for m in marks[1:]]
    starts.append(len(body))
    for mark, nxt in zip(marks, starts, strict=False):  # no marks: one end and nothing to pair
        if mark.start() < pos:
            continue  # a " key=" inside a quoted value already consumed
        start = mark.end()
        if body.startswith('"', start):
            quoted = _QUOTED.match(body, start)
            if quoted is None:
                raise BadRecord(f"key {mark[1]!r}: unterminated quoted value at column {start + 1}")
            pairs[mark[1]] = quoted[1]
            pos = quoted.end()
            continue
        pairs[mark[1]] = body[start:nxt].strip()
        pos = nxt
    return pairs


def _unhex(value: str) -> str:
    """Hex text (a value :data:`_HEX` matches) decoded; NULs (argv separators) become blanks."""
    try:
        return bytes.fromhex(value).decode("utf-8", "replace").replace("\x00", " ").strip()
    except ValueError:
        return value


def _decoded(key: str, value: str, body: str) -> str:
    """The value of ``key`` (one of :data:`HEX_KEYS`), hex text: decoded unless the key was written quoted.

    Values are decoded as they are read, and only the keys the fields are made from are read; a
    key counts as quoted when any of its occurrences is (the last duplicate gives the value), the
    same in the fast path and the general one.
    """
    return value if key in _QUOTED_KEY.findall(body) else _unhex(value)


def _text(pairs: dict[str, str], key: str, body: str) -> str | None:
    """The value of ``key`` (one of :data:`HEX_KEYS`), decoded when it is hex text written unquoted."""
    value = pairs.get(key)
    return _decoded(key, value, body) if value and _HEX.fullmatch(value) else value


class AuditdParser(Parser):
    """Linux audit records (auditd raw log and auoms), one event per record, joined by serial."""

    name: ClassVar[str] = "auditd"
    dataset: ClassVar[str] = "auditd.log"
    description: ClassVar[str] = "Linux auditd raw log lines and OMS auoms records (SYSCALL, EXECVE, logins ...)."

    def __init__(self) -> None:
        self._context: dict[str, OrderedDict[str, dict[str, Value]]] = {}
        self._lock = threading.Lock()

    def parse(self, record: RawRecord) -> list[Event]:
        line = record.data.rstrip("\r\n")
        header = _HEADER.search(line)
        if header is None:
            if "type=" in line and "audit(" in line:
                raise BadRecord("audit record without a valid 'audit(<epoch>:<serial>):' header")
            raise NotMyFormat("no 'type=... audit(<epoch>:<serial>):' header: not a Linux audit record")
        rtype, ts, serial = header.groups()
        try:
            # float(text) is float(Decimal(text)) for ASCII digits (both round the exact value once); the
            # pattern's \d also takes other digits, which go through Decimal as before
            seconds = float(ts) if ts.isascii() else float(Decimal(ts))
            timestamp = datetime.fromtimestamp(seconds, UTC)
        except (InvalidOperation, OverflowError, ValueError, OSError):
            raise BadRecord(f"audit timestamp {ts!r} is out of range") from None
        body = line[header.end() :]
        if body.endswith("'") and (body.startswith("msg='") or " msg='" in body):
            # user-space records nest their own pairs in msg='...'; they are read as pairs of the record
            body = f" {body}".replace(" msg='", " ", 1)[1:-1]
        pairs = _simple_pairs(body)
        if pairs is None:
            pairs = split_pairs(body)
        category, types, action = RECORD_TYPES.get(rtype) or (("host",), ("info",), rtype.lower())
        fields: dict[str, Value] = {
            "event.kind": "event",
            "event.category": category,
            "event.type": types,
            "event.action": action,
            "event.code": rtype,
            "event.module": "auditd",
            "event.dataset": self.dataset,
            "event.sequence": int(serial),
            "event.original": record.data,
            "host.os.type": "linux",
        }
        self._own_fields(rtype, pairs, body, fields)
        result = pairs.get("success") or pairs.get("res") or ""
        if result in ("yes", "success"):
            fields["event.outcome"] = "success"
        elif result in ("no", "failed", "fail"):
            fields["event.outcome"] = "failure"
        self._join(record.source, serial, fields)
        fields["message"] = self._sentence(rtype, serial, fields)
        try:
            return [Event(stable_id(self.name, record.source, record.offset, record.data), timestamp, fields)]
        except EventValidationError as exc:
            raise BadRecord(str(exc)) from exc

    @staticmethod
    def _own_fields(rtype: str, pairs: dict[str, str], body: str, fields: dict[str, Value]) -> None:
        """Add the fields the record's pairs give, in this order (a value that is empty, "?" or an unset id
        gives none); the pids must be numbers."""
        get = pairs.get
        if (value := get("node") or get("hostname")) and value not in _UNSET:
            fields["host.name"] = value
        # the pids as int (what Event would make of the digits), but text that int() may refuse (non-ASCII
        # digits, the int digits limit) stays text for Event to decide about, as before
        if (value := get("pid")) and value not in _UNSET:
            if not value.isdigit():
                raise BadRecord(f"key 'pid': {value!r} is not a number")
            fields["process.pid"] = int(value) if len(value) < 19 and value.isascii() else value
        if (value := get("ppid")) and value not in _UNSET:
            if not value.isdigit():
                raise BadRecord(f"key 'ppid': {value!r} is not a number")
            fields["process.parent.pid"] = int(value) if len(value) < 19 and value.isascii() else value
        # the keys that may hold hex text: _text written out for the four most records have (a call less)
        if (value := get("comm")) and _HEX.fullmatch(value):
            value = _decoded("comm", value, body)
        if value and value not in _UNSET:
            fields["process.name"] = value
        if (value := get("exe")) and _HEX.fullmatch(value):
            value = _decoded("exe", value, body)
        if value and value not in _UNSET:
            fields["process.executable"] = value
        if (value := get("cwd")) and _HEX.fullmatch(value):
            value = _decoded("cwd", value, body)
        if value and value not in _UNSET:
            fields["process.working_directory"] = value
        if (value := get("uid")) and value not in _UNSET:
            fields["user.id"] = value
        if (value := get("euid")) and value not in _UNSET:
            fields["user.effective.id"] = value
        if (value := get("auid")) and value not in _UNSET:
            fields["user.audit.id"] = value
        user = get("user") or _text(pairs, "acct", body) or get("UID")
        if user and user not in _UNSET:
            fields["user.name"] = user
        if (value := get("name")) and _HEX.fullmatch(value):
            value = _decoded("name", value, body)
        if value and value not in _UNSET:
            fields["file.path"] = value
        if (value := get("key")) and value not in _UNSET:
            fields["labels.audit_key"] = value
        if (value := get("syscall")) and value not in _UNSET:
            fields["labels.syscall"] = value
        if rtype == "EXECVE":
            argc = get("argc", "")
            count = int(argc) if argc.isdigit() and int(argc) < 4096 else 0
            if count and all(f"a{i}" in pairs for i in range(count)):
                quoted = set(_QUOTED_KEY.findall(body))  # once for all the arguments, not once per argument
                argv = []
                for key in [f"a{i}" for i in range(count)]:
                    arg = pairs[key]
                    argv.append(_unhex(arg) if arg and key not in quoted and _HEX.fullmatch(arg) else arg)
                fields["process.command_line"] = " ".join(argv)
        elif rtype == "AUOMS_EXECVE" and get("cmdline"):
            fields["process.command_line"] = pairs["cmdline"]
        elif rtype in ("PROCTITLE", "AUOMS_EXECVE") and (value := _text(pairs, "proctitle", body)):
            fields["process.command_line"] = value
        if rtype == "USER_CMD" and (value := _text(pairs, "cmd", body)):
            fields["process.command_line"] = value
        addr = get("addr")
        if addr and addr not in ("?", "(none)"):
            fields["source.ip"] = addr
        if user and user not in _UNSET:
            fields["related.user"] = (user,)

    def _join(self, source: str, serial: str, fields: dict[str, Value]) -> None:
        """Share process context between the records of one serial (see the module docstring).

        The window keeps the first record's ``fields`` themselves (their process keys do not change
        after this call) and picks the context from them when a second record of the serial comes:
        many serials never get one, and picking costs more than keeping.
        """
        with self._lock:
            window = self._context.get(source)
            if window is None:
                window = self._context[source] = OrderedDict()
            known = window.get(serial)
            if known is None:
                window[serial] = fields
                while len(window) > JOIN_WINDOW:
                    window.popitem(last=False)
                return
            if "event.kind" in known:  # still the first record's fields (a context has process keys only)
                known = window[serial] = {k: v for k in _PROCESS_KEYS if (v := known.get(k)) is not None}
            mine = {k: v for k in _PROCESS_KEYS if (v := fields.get(k)) is not None}
            for key, value in known.items():
                fields.setdefault(key, value)
            known.update({k: v for k, v in mine.items() if k not in known})

    @staticmethod
    def _sentence(rtype: str, serial: str, fields: dict[str, Value]) -> str:
        parts = [f"audit {rtype} serial {serial}"]
        if "user.name" in fields or "user.id" in fields:
            parts.append(f"user {fields.get('user.name', fields.get('user.id'))}")
        if "process.executable" in fields:
            parts.append(f"exe {fields['process.executable']}")
        if "process.command_line" in fields:
            parts.append(f"cmd {fields['process.command_line']}")
        if "file.path" in fields:
            parts.append(f"path {fields['file.path']}")
        if "event.outcome" in fields:
            parts.append(str(fields["event.outcome"]))
        return " ".join(parts)


register_parser(AuditdParser)
