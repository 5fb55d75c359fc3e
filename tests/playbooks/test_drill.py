"""Drill mode: every action simulated, approvals scripted or awaiting, a report in JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from playbooks.actions import ActionContext, ActionRegistry, ActionSpec, Impact
from playbooks.drill import ScriptedDecision, approve_all, run_drill
from playbooks.model import Playbook
from store.models import Incident, IncidentStatus, RunStatus, Severity
from store.sqlite import SQLiteStore
from tests.helpers import T0

REAL_CALLS: list[str] = []


def _say(ctx: ActionContext, text: str) -> dict[str, Any]:
    if ctx.drill:
        return {"simulated": True, "would_say": text}
    REAL_CALLS.append(text)
    return {"said": text}


def _valve(ctx: ActionContext, plc: str, setpoint: float) -> dict[str, Any]:
    if ctx.drill:
        return {"simulated": True, "would_write": {"plc": plc, "setpoint": setpoint}}
    REAL_CALLS.append(f"valve {plc}")
    return {"written": setpoint}


REG = ActionRegistry()
REG.register(ActionSpec("say", _say, Impact.NOTIFY, ""))
REG.register(ActionSpec("set_valve", _valve, Impact.OT_WRITE, ""))

PLAYBOOK = Playbook.from_dict(
    {
        "id": "pump-station-isolation",
        "version": "3",
        "steps": [
            {"ref": "tell", "action": "say", "args": {"text": "incident {{ incident.id }}: {{ incident.title }}"}},
            {"ref": "ok", "approval": {"roles": ["engineer"], "quorum": 2}, "timeout": "15m", "on_timeout": "esc"},
            {"ref": "close-valve", "action": "set_valve", "args": {"plc": "plc-7", "setpoint": "0"}},
            {"ref": "esc", "action": "say", "args": {"text": "no decision in 15 minutes"}},
        ],
    },
    REG,
    source="pump.yml",
)
INCIDENT = Incident("INC-9", "Modbus | write <b>", Severity.CRITICAL, IncidentStatus.NEW, T0, T0, T0, T0, "k")


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    REAL_CALLS.clear()
    return SQLiteStore(tmp_path / "db")


def test_a_scripted_drill_simulates_everything_and_reports_who_approved(store: SQLiteStore, tmp_path: Path) -> None:
    script = approve_all(("ann", ["engineer"]), ("bob", ["engineer"]))
    report = run_drill(store, PLAYBOOK, INCIDENT, script, registry=REG, home=tmp_path)
    assert report.status == "succeeded" and REAL_CALLS == []
    steps = {s.key: s for s in report.steps}
    assert steps["tell"].would_have == {"simulated": True, "would_say": "incident INC-9: Modbus | write <b>"}
    assert steps["close-valve"].would_have == {"simulated": True, "would_write": {"plc": "plc-7", "setpoint": 0.0}}
    assert steps["esc"].status == "skipped" and steps["tell"].duration_ms is not None
    [approval] = report.approvals
    assert approval.status == "approved" and [d["user"] for d in approval.decisions] == ["ann", "bob"]
    data = json.loads(report.to_json())
    assert data["playbook"] == "pump-station-isolation" and data["approvals"][0]["quorum"] == 2
    md = report.to_markdown()
    assert "# Drill report: pump-station-isolation" in md and "ann approved" in md
    assert "Modbus \\| write &lt;b&gt;" in md  # incident text cannot break the table or inject HTML
    assert store.get_run(report.run_id).drill and store.verify_audit() > 0


def test_without_a_script_approvals_are_reported_awaiting(store: SQLiteStore, tmp_path: Path) -> None:
    report = run_drill(store, PLAYBOOK, INCIDENT, registry=REG, home=tmp_path)
    assert report.status == "awaiting approval" and report.approvals[0].status == "awaiting"
    assert {s.key: s.status for s in report.steps}["close-valve"] == "skipped"
    assert store.get_run(report.run_id).status is RunStatus.FAILED  # a drill never lingers for the workers
    assert "awaiting" in report.to_markdown()


def test_a_rejecting_script_and_a_mapping_script(store: SQLiteStore, tmp_path: Path) -> None:
    no = {"ok": [ScriptedDecision("ann", ("engineer",), approve=False, reason="not during the drill window")]}
    report = run_drill(store, PLAYBOOK, INCIDENT, no, registry=REG, home=tmp_path)
    assert report.status == "failed" and report.approvals[0].status == "rejected"
    assert "not during the drill window" in (report.error or "")
    assert REAL_CALLS == []
