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
from collectors.names import KnownNames
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
#: keys whose unquoted value is hex-encoded text
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
_ARG = re.compile(r"a\d+")
_PROCESS_KEYS = ("process.pid", "process.parent.pid", "process.name", "process.executable",
                 "process.command_line", "process.working_directory", "user.id", "user.name", "user.audit.id",
                 "user.effective.id")  # fmt: skip


def _simple_pairs(body: str) -> tuple[dict[str, str], set[str]] | None:
    """:func:`split_pairs` and the quoted keys for the usual body, or None for any other.

    The usual body (what auditd writes for SYSCALL and most records) is ``key=value`` tokens
    separated by single spaces, each value either without blanks or quoted without blanks or
    quotes inside.  For it, cutting at the spaces is exactly what :func:`split_pairs`' marks
    do, at a fraction of the cost; anything else (auoms' unquoted values with blanks, quotes
    inside quotes, tabs, a token that is not ``key=``) returns None and takes the general path.
    """
    tokens = body.split(" ")
    if tokens != body.split():  # other white space, doubled or leading blanks: the marks decide
        return None
    pairs: dict[str, str] = {}
    quoted: set[str] = set()
    known = _KEYS.seen
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or (key not in known and not _KEYS.matches(key)):
            return None
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
                return None
            value = value[1:-1]
            quoted.add(key)
        pairs[key] = value
    return pairs, quoted


#: keys of the form a mark's key has (``[A-Za-z_][A-Za-z0-9_]*``), remembered once met
_KEYS = KnownNames(r"[A-Za-z_][A-Za-z0-9_]*")


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


#: key -> whether its unquoted value may be hex text (in HEX_KEYS, or an EXECVE argument a0, a1 ...); bounded
_HEX_KEY: dict[str, bool] = {}


def _decode(key: str, value: str, quoted_keys: set[str]) -> str:
    hex_key = _HEX_KEY.get(key)
    if hex_key is None:
        hex_key = key in HEX_KEYS or _ARG.fullmatch(key) is not None
        if len(_HEX_KEY) < 4096:
            _HEX_KEY[key] = hex_key
    # the key's tests first: most keys never hold hex text, and a regex over the value costs more
    if not hex_key or key in quoted_keys or not _HEX.fullmatch(value):
        return value
    try:
        return bytes.fromhex(value).decode("utf-8", "replace").replace("\x00", " ").strip()
    except ValueError:
        return value


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
        rtype, serial = header["type"], header["serial"]
        try:
            timestamp = datetime.fromtimestamp(float(Decimal(header["ts"])), UTC)
        except (InvalidOperation, OverflowError, ValueError, OSError):
            raise BadRecord(f"audit timestamp {header['ts']!r} is out of range") from None
        body = line[header.end() :]
        if " msg='" in f" {body}" and body.endswith("'"):
            # user-space records nest their own pairs in msg='...'; they are read as pairs of the record
            body = f" {body}".replace(" msg='", " ", 1)[1:-1]
        simple = _simple_pairs(body)
        if simple is not None:
            raw, quoted = simple
        else:
            raw = split_pairs(body)
            quoted = {m[1] for m in _QUOTED_KEY.finditer(body)} if '="' in body else set()
        hex_keys = _HEX_KEY
        # _decode leaves the value of a key known not to hold hex text as it is: not called for those
        values = {k: v if hex_keys.get(k) is False else _decode(k, v, quoted) for k, v in raw.items()}
        category, types, action = RECORD_TYPES.get(rtype, (("host",), ("info",), rtype.lower()))
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
        fields.update(self._own_fields(rtype, values))
        result = values.get("success") or values.get("res") or ""
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
    def _own_fields(rtype: str, values: dict[str, str]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        simple = {
            "host.name": values.get("node") or values.get("hostname"),
            "process.pid": values.get("pid"),
            "process.parent.pid": values.get("ppid"),
            "process.name": values.get("comm"),
            "process.executable": values.get("exe"),
            "process.working_directory": values.get("cwd"),
            "user.id": values.get("uid"),
            "user.effective.id": values.get("euid"),
            "user.audit.id": values.get("auid"),
            "user.name": values.get("user") or values.get("acct") or values.get("UID"),
            "file.path": values.get("name"),
            "labels.audit_key": values.get("key"),
            "labels.syscall": values.get("syscall"),
        }
        for name, value in simple.items():
            if value and value not in UNSET_IDS and value != "?":
                if name in ("process.pid", "process.parent.pid") and not value.isdigit():
                    key = "pid" if name == "process.pid" else "ppid"
                    raise BadRecord(f"key {key!r}: {value!r} is not a number")
                out[name] = value
        if rtype in ("EXECVE",):
            argc = values.get("argc", "")
            count = int(argc) if argc.isdigit() and int(argc) < 4096 else 0
            if count and all(f"a{i}" in values for i in range(count)):
                out["process.command_line"] = " ".join(values[f"a{i}"] for i in range(count))
        elif rtype == "AUOMS_EXECVE" and values.get("cmdline"):
            out["process.command_line"] = values["cmdline"]
        elif values.get("proctitle") and rtype in ("PROCTITLE", "AUOMS_EXECVE"):
            out["process.command_line"] = values["proctitle"]
        if rtype == "USER_CMD" and values.get("cmd"):
            out["process.command_line"] = values["cmd"]
        addr = values.get("addr")
        if addr and addr not in ("?", "(none)"):
            out["source.ip"] = addr
        if "user.name" in out:
            out["related.user"] = (str(out["user.name"]),)
        return out

    def _join(self, source: str, serial: str, fields: dict[str, Value]) -> None:
        """Share process context between the records of one serial (see the module docstring)."""
        with self._lock:
            window = self._context.setdefault(source, OrderedDict())
            known = window.get(serial)
            mine = {k: fields[k] for k in _PROCESS_KEYS if k in fields}
            if known is None:
                window[serial] = mine
                while len(window) > JOIN_WINDOW:
                    window.popitem(last=False)
                return
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
