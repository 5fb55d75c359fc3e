"""The scoreboard: every scenario detected with its expected rules and an incident; few false positives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.scenario_spec import load_scenarios
from lab.scoreboard import BenignDay, ScenarioResult, ScoreboardError, benign_day, run_scenarios, table
from lab.telemetry import Rates

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results() -> dict[str, ScenarioResult]:
    return {r.scenario: r for r in run_scenarios(seed=7)}  # in a throw-away CITYSOC_HOME


def test_every_scenario_is_detected_with_its_expected_rules_and_an_incident(
    results: dict[str, ScenarioResult],
) -> None:
    scenarios = load_scenarios()
    assert set(results) == set(scenarios)
    for name, r in results.items():
        assert r.detected and not r.missed, (name, r.missed)
        assert r.incidents >= 1 and r.true_positive_alerts >= len(scenarios[name].expected), name
        assert r.mttd_seconds is not None and r.mttd_seconds >= 0, name
        assert r.false_positives == 0, (name, r.false_positive_rules)
        assert r.malicious_records > 0 and r.events > r.malicious_records, name


def test_detection_times_are_those_of_the_simulated_attack(results: dict[str, ScenarioResult]) -> None:
    # brute force: the 5th failed login of a guess every 0.8 s; replay: the 6th replayed 15-minute value
    assert results["camera-bruteforce-firmware"].mttd_seconds == pytest.approx(3.2, abs=0.01)
    assert results["sensor-replay"].mttd_seconds == 5 * 900
    assert 3 * 3600 <= (results["modbus-setpoint-within-range"].mttd_seconds or 0) <= 12 * 3600
    assert results["data-platform-exfiltration"].mttd_seconds == pytest.approx(300, abs=1)
    assert "camera-compromise-ot-pivot" in results["camera-bruteforce-firmware"].playbooks
    line = table(list(results.values())).splitlines()[2]
    assert line.startswith("| camera-bruteforce-firmware | yes | 3.2 |")


def test_false_positives_on_a_simulated_benign_day_stay_below_a_tenth_of_a_percent() -> None:
    # a whole day with its rhythms, at a fifth of the lab's rates to keep the suite fast
    day: BenignDay = benign_day(seed=11, hours=24, rates=Rates().scaled(0.2))
    assert day.events > 4000
    assert day.rate < 0.001, day.rules


def test_cli_prints_one_json_object_per_scenario(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "console.cli", "lab", "run", "plc-stop-program-download", "hospital-ransomware",
         "--json", "--seed", "3", "--home", str(tmp_path / "home")],
        capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
        env={**os.environ, "CITYSOC_HOME": str(tmp_path / "unused")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["scenario"] for r in rows] == ["plc-stop-program-download", "hospital-ransomware"]
    assert all(r["detected"] and isinstance(r["mttd_seconds"], float) and r["false_positives"] == 0 for r in rows)
    assert (tmp_path / "home" / "lab-runs" / "hospital-ransomware.db").exists()


def test_unknown_scenario_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScoreboardError, match="unknown scenario"):
        run_scenarios(["no-such-attack"], home=tmp_path)


def test_an_expected_detection_that_no_rule_or_model_provides_is_an_error() -> None:
    from lab.scoreboard import check_expected

    scenario = load_scenarios()["ioc-api-ddos"]
    check_expected([scenario], {"87fbaefc-044d-5523-bba6-d1713fd57aa4"})
    with pytest.raises(ScoreboardError, match=r"ioc-api-ddos.yml: expected '87fbaefc-.*' is no rule id of the pack"):
        check_expected([scenario], {"some-other-rule"})
    check_expected([load_scenarios()["sensor-replay"]], set())  # anomaly:<model> of the lab's trained models
