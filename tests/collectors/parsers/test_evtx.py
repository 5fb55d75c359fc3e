"""The Windows event parser: EVTX, EVTX-as-JSON and Winlogbeat layouts to ECS."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.base import BadRecord, NotMyFormat, RawRecord
from collectors.parsers.evtx import EVENT_DATA_FIELDS, WindowsEventParser, read_evtx
from detections.sigma.pipelines import WINDOWS_FIELDS
from tests.helpers import REPO, shared

SAMPLES = REPO / "tests" / "data" / "collectors" / "evtx"
SHAI_HULUD = (
    "sigma-regression",
    "regression_data",
    "rules-emerging-threats",
    "2025",
    "Malware",
    "Shai-Hulud",
    "proc_creation_win_mal_shai_hulud_indicator",
)


def _lines() -> list[str]:
    return (SAMPLES / "winlogbeat.ndjson").read_text(encoding="utf-8").splitlines()


def test_event_data_names_agree_with_the_sigma_pipeline() -> None:
    for name, target in EVENT_DATA_FIELDS.items():
        assert WINDOWS_FIELDS[name] == target, name


def test_winlogbeat_sysmon_network_event() -> None:
    (event,) = WindowsEventParser().parse(RawRecord(_lines()[0], "file:x", "0"))
    assert event.get("event.dataset") == "windows.sysmon"
    assert event.get("winlog.event_id") == "3"
    assert event.get("process.executable") == "C:\\Windows\\System32\\svchost.exe"
    assert event.get("source.ip") == "10.20.1.15" and event.get("source.port") == 50211
    assert event.get("destination.port") == 502
    assert event.get("destination.ip") is None  # "-" is not an address: kept as EventData only
    assert event.get("winlog.event_data.DestinationIp") == "-"
    assert event.get("host.name") == "scada-hmi-01.city.local"


def test_security_4688_maps_its_process_names() -> None:
    (event,) = WindowsEventParser().parse(RawRecord(_lines()[1], "file:x", "1"))
    assert event.get("process.executable") == "C:\\Windows\\System32\\cmd.exe"
    assert event.get("process.parent.executable") == "C:\\Windows\\explorer.exe"
    assert event.get("winlog.event_data.SubjectUserName") == "operator"
    assert event.get("event.dataset") == "windows.security"


def test_bad_record_and_foreign_format_are_told_apart() -> None:
    with pytest.raises(BadRecord, match=r"file:x@2"):
        WindowsEventParser().parse(RawRecord(_lines()[2], "file:x", "2"))
    with pytest.raises(NotMyFormat):
        WindowsEventParser().parse(RawRecord('{"@timestamp": "2026-11-21T08:00:00Z"}', "file:x", "0"))
    with pytest.raises(NotMyFormat):
        WindowsEventParser().parse(RawRecord("<13>Nov 21 08:00:00 host sshd[1]: x", "file:x", "0"))


def test_evtx_and_its_json_rendering_give_the_same_event() -> None:
    folder = shared(*SHAI_HULUD)
    (evtx_file,) = folder.glob("*.evtx")
    from_evtx = [WindowsEventParser().parse(r)[0] for r in read_evtx(evtx_file)]
    assert len(from_evtx) == 1
    (event,) = from_evtx
    assert event.get("process.executable") == "C:\\Users\\xodih\\.dev-env\\bin\\Runner.Listener.exe"
    assert event.get("winlog.event_data.OriginalFileName") == "Runner.Listener.dll"
    (json_file,) = folder.glob("*.json")
    (from_json,) = WindowsEventParser().parse(RawRecord(json_file.read_text(encoding="utf-8"), "file:j", "0"))
    assert from_json.id == event.id
    assert {k: v for k, v in from_json.fields.items() if k != "event.original"} == {
        k: v for k, v in event.fields.items() if k != "event.original"
    }


def test_a_file_that_is_not_evtx_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "x.evtx"
    bogus.write_bytes(b"not an event log")
    from collectors.parsers.evtx import EvtxError

    with pytest.raises(EvtxError, match=r"x\.evtx"):
        list(read_evtx(bogus))


def test_hunt_reports_an_unreadable_evtx_file_and_goes_on(tmp_path: Path) -> None:
    import io

    from detections.hunt import hunt_files
    from detections.pack import load_rules

    (tmp_path / "broken.evtx").write_bytes(b"ElfFile\x00 truncated")
    (tmp_path / "events.ndjson").write_text(_lines()[1] + "\n", encoding="utf-8")
    summary = hunt_files(load_rules([REPO / "detections" / "rules"]), [tmp_path], out=io.StringIO())
    assert summary["files"] == 2 and summary["events"] == 1
    assert len(summary["unreadable"]) == 1 and "broken.evtx" in summary["unreadable"][0]
