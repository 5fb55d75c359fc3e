"""Attack scenarios as data: every file loads, steps are checked, ground truth is labelled."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.attacks import STEP_KINDS
from lab.city import load_city
from lab.scenario_spec import ScenarioError, load_scenarios

ISSUE_SCENARIOS = {
    "camera-bruteforce-firmware", "iot-botnet-mirai", "modbus-setpoint-within-range", "sensor-replay",
    "plc-stop-program-download", "ioc-api-ddos", "open-api-key-abuse", "data-platform-exfiltration",
    "hospital-ransomware", "phishing-lateral-movement",
}  # fmt: skip


def test_every_scenario_of_the_issue_loads() -> None:
    scenarios = load_scenarios()
    assert set(scenarios) == ISSUE_SCENARIOS
    for s in scenarios.values():
        assert s.techniques and s.expected and s.steps
        assert {step.technique for step in s.steps} <= set(s.techniques)


def test_attack_records_are_labelled_malicious_and_deterministic() -> None:
    city = load_city()
    scenario = load_scenarios()["hospital-ransomware"]
    records = scenario.attack_records(city, 7)
    assert records == scenario.attack_records(city, 7)
    assert all(r.malicious and r.label.startswith("hospital-ransomware:T") for r in records)
    assert records[0].ts == scenario.attack_start
    assert {r.channel for r in records} == {"windows"}
    assert sum(1 for r in records if "vssadmin" in r.line) == 1


def test_process_attacks_become_scada_attacks() -> None:
    [attack] = load_scenarios()["sensor-replay"].scada_attacks()
    assert (attack.kind, attack.start, attack.duration) == ("replay", 120, 24)  # 30 h in, 6 h long


def test_all_problems_of_bad_files_are_reported_with_file_and_step(tmp_path: Path) -> None:
    bad = tmp_path / "bad-one.yml"
    bad.write_text(
        "name: bad-one\ntitle: t\ndescription: d\ntechniques: [T1110, X99]\nexpected: [r]\n"
        "steps:\n"
        "  - {at: 0s, technique: T1110, kind: camera_logins, camera: cam-0042}\n"  # missing source
        "  - {at: 1s, technique: T1110, kind: teleport, to: mars}\n"
        "  - {at: 2s, technique: T1499, kind: syslog, host: h, app: a, message: m, colour: red}\n"
        "  - {at: soon, technique: T1110, kind: syslog, host: h, app: a, message: m}\n"
        "  - {at: 3s, technique: T1110, kind: camera_logins, camera: cam-0042, source: x, count: many}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as err:
        load_scenarios([bad])
    text = str(err.value)
    assert "technique 'X99' is not an ATT&CK id" in text
    assert f"{bad}: steps[0]: camera_logins needs parameter 'source'" in text
    assert f"{bad}: steps[1]: unknown step kind 'teleport'" in text
    assert f"{bad}: steps[2]: technique 'T1499' is not among" in text
    assert f"{bad}: steps[2]: syslog has no parameter(s) colour" in text
    assert f"{bad}: steps[3]: at: 'soon' is not a duration" in text
    assert f"{bad}: steps[4]: camera_logins.count must be int, got 'many'" in text


def test_step_kinds_have_docstrings() -> None:
    assert all(fn.__doc__ for fn in STEP_KINDS.values())


def test_emit_prints_a_scenario_as_labelled_ndjson() -> None:
    import json

    from click.testing import CliRunner

    from lab.cli import lab

    result = CliRunner().invoke(lab, ["emit", "--scenario", "plc-stop-program-download", "--seed", "7"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    malicious = [r for r in rows if r["malicious"]]
    expected = load_scenarios()["plc-stop-program-download"].attack_records(load_city(), 7)
    assert [r["line"] for r in malicious] == [r.line for r in expected]
    assert {r["label"] for r in malicious} == {"plc-stop-program-download:T0881", "plc-stop-program-download:T0843"}
    assert rows == sorted(rows, key=lambda r: r["ts"]) and len(rows) > 10 * len(malicious)
