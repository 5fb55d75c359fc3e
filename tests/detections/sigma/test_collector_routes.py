"""The logsource routes of the auditd, web, Suricata, CEF, IoT-platform, SCADA and Zeek ICS parsers."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from collectors.base import Parser
from collectors.parsers.auditd import AuditdParser
from collectors.parsers.cef import CefParser
from collectors.parsers.iot_platform import IotPlatformParser
from collectors.parsers.scada_csv import ScadaCsvParser
from collectors.parsers.suricata import SuricataEveParser
from collectors.parsers.web import WebAccessParser
from collectors.parsers.zeek import ZeekParser
from detections.sigma.matcher import LogsourceKey, RuleSet
from tests.collectors.samples import DATA, parse_file, record
from tests.helpers import shared


def _logsources(parser: Parser, path: Path) -> list[frozenset[LogsourceKey]]:
    rules = RuleSet([])
    return [rules.logsources(e) for e in parse_file(parser, path).events]


def test_each_dataset_reaches_its_logsource() -> None:
    web = _logsources(WebAccessParser(), DATA / "web" / "access.log")
    assert all(LogsourceKey(None, "webserver") in found for found in web)
    eve = _logsources(SuricataEveParser(), DATA / "suricata" / "eve.json")
    assert LogsourceKey("suricata", None, "alert") in eve[0]
    assert LogsourceKey("suricata", None, "alert") not in eve[1]
    assert all(LogsourceKey("suricata") in found for found in eve)
    assert LogsourceKey(None, "dns") in eve[2]
    assert all(LogsourceKey("citysoc", None, "cef") in f for f in _logsources(CefParser(), DATA / "cef" / "cef.log"))
    iot = _logsources(IotPlatformParser(), DATA / "iot_platform" / "platform.jsonl")
    assert all(LogsourceKey("citysoc", None, "iot_platform") in found for found in iot)
    scada = _logsources(ScadaCsvParser(), DATA / "scada" / "pumping_station.csv")
    assert all(LogsourceKey("citysoc", None, "scada") in found for found in scada)
    ics = _logsources(ZeekParser(), DATA / "zeek" / "ics.json")
    services = [{key.service for key in found if key.product == "zeek"} for found in ics]
    assert services == [{"dnp3"}] * 4 + [{"s7comm"}] * 3 + [{"bacnet"}] * 2 + [{"enip"}] * 2


def test_auditd_events_are_linux_and_auditd() -> None:
    with zipfile.ZipFile(shared("otrf", "syslog_auoms_auditd_log4shell_cve2021_44228_jndi_reference.zip")) as archive:
        first = json.loads(archive.read(archive.namelist()[0]).decode("utf-8").splitlines()[0])["SyslogMessage"]
    [event] = AuditdParser().parse(record(first))
    found = RuleSet([]).logsources(event)
    assert {LogsourceKey("linux"), LogsourceKey("linux", None, "auditd")} <= found
