"""Approval steps: who may decide, quorum of distinct people, reasons, deadlines, audit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from playbooks.actions import REGISTRY
from playbooks.approvals import ApprovalError, PendingApproval, decide, pending_approvals
from playbooks.model import Playbook, PlaybookLibrary
from playbooks.runner import Runner, new_run
from store.models import Incident, IncidentStatus, RunStatus, Severity, StepStatus
from store.sqlite import SQLiteStore
from tests.helpers import T0

PLAYBOOK = {
    "id": "needs-two",
    "steps": [
        {
            "ref": "ok",
            "approval": {
                "roles": ["responder", "engineer"],
                "quorum": 2,
                "description": "Isolate the pumping station PLC network",
                "impact": "pumping station 3 goes to local control",
            },
            "timeout": "30m",
        },
        {"ref": "note", "action": "add_comment", "args": {"text": "approved"}},
    ],
}


class Resumer:
    def __init__(self) -> None:
        self.resumed: list[str] = []

    def resume(self, run_id: str) -> None:
        self.resumed.append(run_id)


@pytest.fixture
def waiting(tmp_path: Path) -> tuple[SQLiteStore, Runner, str]:
    store = SQLiteStore(tmp_path / "db")
    store.create_incident(
        Incident("INC-1", "PLC writes", Severity.CRITICAL, IncidentStatus.NEW, T0, T0, T0, T0, "k"), actor="t"
    )
    pb = Playbook.from_dict(PLAYBOOK, REGISTRY)
    runner = Runner(store, PlaybookLibrary([pb]), REGISTRY, tmp_path)
    run = new_run(store, pb, "INC-1", REGISTRY)
    assert runner.drive(run.id).status is RunStatus.WAITING
    return store, runner, run.id


def test_pending_approvals_are_listed_for_the_roles_that_may_decide(waiting: tuple[SQLiteStore, Runner, str]) -> None:
    store, _, run_id = waiting
    [pending] = pending_approvals(store, ["engineer"])
    assert isinstance(pending, PendingApproval)
    assert (pending.run_id, pending.step_ref, pending.playbook, pending.incident_id) == (
        run_id,
        "ok",
        "needs-two",
        "INC-1",
    )
    assert pending.required_roles == ("responder", "engineer") and pending.quorum == 2 and pending.approvals == ()
    assert pending.description.startswith("Isolate") and "local control" in pending.impact
    assert timedelta(minutes=29) < pending.deadline - store.get_run(run_id).updated <= timedelta(minutes=30)
    assert pending_approvals(store, ["analyst"]) == []
    assert len(pending_approvals(store, ["admin"])) == 1


def test_a_quorum_of_two_distinct_people_continues_the_run(waiting: tuple[SQLiteStore, Runner, str]) -> None:
    store, runner, run_id = waiting
    resumer = Resumer()
    first = decide(store, run_id, "ok", "ann", ["responder"], True, "source confirmed hostile", resumer)
    assert first is not None and first.remaining == 1 and first.approvals[0].user == "ann"
    assert first.approvals[0].roles == ("responder",) and first.approvals[0].reason == "source confirmed hostile"
    with pytest.raises(ApprovalError, match="already decided"):
        decide(store, run_id, "ok", "ann", ["responder"], True, "again", resumer)
    assert resumer.resumed == []
    assert decide(store, run_id, "ok", "bob", ["engineer", "analyst"], True, "plant can run locally", resumer) is None
    assert resumer.resumed == [run_id]
    runner.drive(run_id)  # what the resumer's task does on a worker
    rec = next(r for r in store.get_run(run_id).steps if r.ref == "ok")
    assert rec.status is StepStatus.SUCCEEDED and [d["user"] for d in rec.output["decisions"]] == ["ann", "bob"]
    decided = [e for e in store.audit_entries() if e.action == "approval.decided"]
    assert [(e.actor, e.details["approve"], e.details["reason"]) for e in reversed(decided)] == [
        ("ann", True, "source confirmed hostile"),
        ("bob", True, "plant can run locally"),
    ]
    assert pending_approvals(store, ["admin"]) == []
    with pytest.raises(ApprovalError, match=r"already decided \(succeeded\)"):
        decide(store, run_id, "ok", "cat", ["responder"], True, "late")


@pytest.mark.parametrize(
    ("user", "roles", "reason", "message"),
    [
        ("eve", ["analyst"], "why not", "lacks a role required"),
        ("ann", ["responder"], "   ", "a reason is required"),
        ("", ["responder"], "x", "user is required"),
    ],
)
def test_refused_decisions_say_why(
    waiting: tuple[SQLiteStore, Runner, str], user: str, roles: list[str], reason: str, message: str
) -> None:
    store, _, run_id = waiting
    with pytest.raises(ApprovalError, match=message):
        decide(store, run_id, "ok", user, roles, True, reason)
    assert pending_approvals(store, ["admin"])[0].approvals == ()


def test_unknown_run_or_step_and_deadline(waiting: tuple[SQLiteStore, Runner, str]) -> None:
    store, _, run_id = waiting
    with pytest.raises(ApprovalError, match="no playbook run"):
        decide(store, "RUN-NOPE", "ok", "ann", ["responder"], True, "x")
    with pytest.raises(ApprovalError, match="no approval step 'note'"):
        decide(store, run_id, "note", "ann", ["responder"], True, "x")
    deadline = pending_approvals(store, ["admin"])[0].deadline
    with pytest.raises(ApprovalError, match="timed out"):
        decide(store, run_id, "ok", "ann", ["responder"], True, "x", now=deadline)


def test_a_rejection_fails_the_step_with_the_reason(waiting: tuple[SQLiteStore, Runner, str]) -> None:
    store, runner, run_id = waiting
    assert decide(store, run_id, "ok", "adm", ["admin"], False, "plant manager says no") is None
    runner.drive(run_id)
    run = store.get_run(run_id)
    assert run.status is RunStatus.FAILED and "plant manager says no" in (run.error or "")
    note: Any = next(r for r in run.steps if r.ref == "note")
    assert note.status is StepStatus.PENDING and note.attempt == 0
