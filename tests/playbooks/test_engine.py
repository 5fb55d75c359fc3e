"""The engine without Celery: sequence, failure branches, retries, templating as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playbooks.actions import REGISTRY, ActionContext, ActionError, render_args
from playbooks.engine import execute_run, new_run
from playbooks.model import Playbook, PlaybookLibrary
from store.models import Alert, Incident, IncidentStatus, RunStatus, Severity, StepStatus
from store.sqlite import SQLiteStore
from tests.helpers import T0, event

HOSTILE = "{{ 7*7 }}$(touch /tmp/pwned);`id`|rm -rf / <script>alert(1)</script> {% raw %}"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "db")
    s.put_events([event(0, {"source.ip": "10.20.5.66", "message": HOSTILE}, event_id="e1")])
    s.create_incident(
        Incident("INC-1", "Brute force", Severity.HIGH, IncidentStatus.NEW, T0, T0, T0, T0, "source.ip=10.20.5.66"),
        actor="test",
    )
    alert = Alert(
        "A1",
        "r1",
        HOSTILE,
        Severity.HIGH,
        T0,
        T0,
        ("e1",),
        {"source.ip": "10.20.5.66", "user.name": HOSTILE},
        ("attack.t1110",),
    )
    s.add_alert(alert)
    s.attach_alert("INC-1", alert, actor="test")
    return s


def _library(steps: list[dict[str, Any]]) -> PlaybookLibrary:
    return PlaybookLibrary([Playbook.from_dict({"id": "pb", "steps": steps}, REGISTRY)])


def test_a_run_executes_steps_in_order_and_records_them(store: SQLiteStore, tmp_path: Path) -> None:
    lib = _library(
        [
            {"ref": "evidence", "action": "collect_evidence"},
            {"ref": "block", "action": "block_ip", "args": {"ip": "{{ entities['source.ip'][0] }}", "reason": "x"}},
            {"ref": "contain", "action": "set_status", "args": {"status": "contained"}},
        ]
    )
    run = new_run(store, lib.get("pb"), "INC-1", REGISTRY)
    done = execute_run(store, run.id, lib, REGISTRY, tmp_path)
    assert done.status is RunStatus.SUCCEEDED
    assert [(s.ref, s.status) for s in done.steps] == [
        ("evidence", StepStatus.SUCCEEDED),
        ("block", StepStatus.SUCCEEDED),
        ("contain", StepStatus.SUCCEEDED),
    ]
    assert done.steps[1].inputs["ip"] == "10.20.5.66"
    assert (tmp_path / "blocklists" / "ip-blocklist.txt").read_text().startswith("10.20.5.66  # INC-1")
    assert store.get_incident("INC-1").status is IncidentStatus.CONTAINED
    kinds = [t.kind for t in store.timeline("INC-1")]
    assert kinds[-3:] == ["evidence", "status", "playbook"]
    assert store.verify_audit() >= 4
    # a redelivered task resumes without repeating completed side effects
    again = execute_run(store, run.id, lib, REGISTRY, tmp_path)
    assert again.status is RunStatus.SUCCEEDED
    assert (tmp_path / "blocklists" / "ip-blocklist.txt").read_text().count("10.20.5.66") == 1


def test_failure_goes_to_on_failure_branch_after_retries(store: SQLiteStore, tmp_path: Path) -> None:
    lib = _library(
        [
            {"ref": "block", "action": "block_ip", "args": {"ip": "not-an-ip"}, "retries": 2, "on_failure": "tell"},
            {"ref": "after", "action": "add_comment", "args": {"text": "never"}},
            {"ref": "tell", "action": "add_comment", "args": {"text": "block failed"}},
        ]
    )
    run = new_run(store, lib.get("pb"), "INC-1", REGISTRY)
    done = execute_run(store, run.id, lib, REGISTRY, tmp_path, backoff_seconds=0.01)
    steps = {s.ref: s for s in done.steps}
    assert done.status is RunStatus.FAILED and "not an IP address" in (done.error or "")
    assert steps["block"].status is StepStatus.FAILED and steps["block"].attempt == 3
    assert steps["tell"].status is StepStatus.SUCCEEDED
    assert steps["after"].status is StepStatus.PENDING


def test_hostile_event_content_reaches_actions_as_inert_data(store: SQLiteStore, tmp_path: Path) -> None:
    lib = _library(
        [
            {"ref": "c", "action": "add_comment", "args": {"text": "user={{ entities['user.name'][0] }}"}},
            {"ref": "b", "action": "block_ip", "args": {"ip": "10.20.5.66", "reason": "{{ alerts[0].rule_title }}"}},
        ]
    )
    run = new_run(store, lib.get("pb"), "INC-1", REGISTRY)
    done = execute_run(store, run.id, lib, REGISTRY, tmp_path)
    assert done.status is RunStatus.SUCCEEDED
    comment = [t for t in store.timeline("INC-1") if t.kind == "comment"][-1]
    assert comment.data["text"] == "user=" + HOSTILE  # not evaluated: no 49, no shell
    assert not Path("/tmp/pwned").exists()
    assert "7*7" in (tmp_path / "blocklists" / "ip-blocklist.txt").read_text()


def test_templates_are_sandboxed() -> None:
    with pytest.raises(ActionError, match="template error"):
        render_args({"x": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, {})
    with pytest.raises(ActionError, match="template error"):
        render_args({"x": "{{ missing }}"}, {})


def test_ot_write_actions_refuse_to_run_outside_drills(store: SQLiteStore, tmp_path: Path) -> None:
    from playbooks.actions import ActionSpec, Impact

    calls: list[str] = []

    def set_pump(ctx: ActionContext, setpoint: int) -> dict[str, int]:
        calls.append("wrote")
        return {"setpoint": setpoint}

    spec = ActionSpec("test_set_pump", set_pump, Impact.OT_WRITE, "")
    REGISTRY.register(spec)
    try:
        lib = _library([{"ref": "w", "action": "test_set_pump", "args": {"setpoint": 10}}])
        done = execute_run(store, new_run(store, lib.get("pb"), "INC-1", REGISTRY).id, lib, REGISTRY, tmp_path)
        assert done.status is RunStatus.FAILED and "writes to OT" in (done.error or "")
        assert calls == []
    finally:
        REGISTRY._actions.pop("test_set_pump")
