"""``citysoc playbooks``: validate, drill, approve, CACAO export/import from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from console.commands.playbooks import command
from tests.helpers import REPO

SCENARIO = REPO / "tests" / "data" / "playbooks" / "camera_scenario.yml"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CITYSOC_PLAYBOOKS", raising=False)
    return tmp_path / "home"


def test_validate_reports_every_error_with_file_and_line(tmp_path: Path) -> None:
    ok = CliRunner().invoke(command, ["validate"])
    assert ok.exit_code == 0 and "playbook(s) valid" in ok.output
    (tmp_path / "bad.yml").write_text("id: bad\nsteps:\n  - ref: a\n    action: nope\n  - ref: b\n    bogus: 1\n")
    bad = CliRunner().invoke(command, ["validate", str(tmp_path / "bad.yml")])
    assert bad.exit_code == 1
    assert "bad.yml:5: step #2" in bad.output and "unknown key" in bad.output


def test_drill_a_scenario_prints_a_json_report() -> None:
    result = CliRunner().invoke(
        command, ["drill", "camera-compromise-ot-pivot", "--scenario", str(SCENARIO), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "succeeded" and report["incident_id"] == "INC-DRILL-CAM"
    block = next(s for s in report["steps"] if s["key"] == "block-source")
    assert block["would_have"]["simulated"] is True and block["inputs"]["ip"] == "10.20.5.66"


def test_drill_needs_exactly_one_source() -> None:
    result = CliRunner().invoke(command, ["drill", "camera-compromise-ot-pivot"])
    assert result.exit_code == 2 and "exactly one of --incident and --scenario" in result.output


def test_cacao_export_then_import(tmp_path: Path) -> None:
    out = tmp_path / "pb.json"
    assert (
        CliRunner().invoke(command, ["export-cacao", "camera-compromise-ot-pivot", "--output", str(out)]).exit_code == 0
    )
    assert json.loads(out.read_text())["spec_version"] == "cacao-2.0"
    back = CliRunner().invoke(command, ["import-cacao", str(out), "--output", str(tmp_path / "pb.yml")])
    assert back.exit_code == 0, back.output
    again = CliRunner().invoke(command, ["validate", str(tmp_path / "pb.yml")])
    assert again.exit_code == 0 and "1 playbook(s) valid" in again.output


def test_approve_refuses_unknown_users_and_lists_nothing_pending() -> None:
    assert CliRunner().invoke(command, ["approve", "--pending"]).output == ""
    refused = CliRunner().invoke(command, ["approve", "RUN-X", "ok", "--user", "ghost", "--reason", "x"])
    assert refused.exit_code == 1 and "no console user 'ghost'" in refused.output
