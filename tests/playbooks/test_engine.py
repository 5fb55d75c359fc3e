"""The pure engine: plans from step records and a time passed in -- no Celery, no store, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from playbooks.actions import ActionContext, ActionRegistry, ActionSpec, Impact
from playbooks.engine import (
    Plan,
    StepFailed,
    StepSucceeded,
    advance,
    idempotency_key,
    initial_records,
    plan,
    split_key,
)
from playbooks.model import Playbook
from store.models import PlaybookRun, RunStatus, StepRecord, StepStatus
from tests.helpers import T0


def _noop(ctx: ActionContext, text: str = "") -> dict[str, Any]:
    return {"text": text}


def _registry() -> ActionRegistry:
    reg = ActionRegistry()
    reg.register(ActionSpec("say", _noop, Impact.NOTIFY, "", idempotent=False))
    reg.register(ActionSpec("look", _noop, Impact.READ, "", idempotent=True))
    reg.register(ActionSpec("open_valve", _noop, Impact.OT_WRITE, ""))
    return reg


REG = _registry()
CTX: dict[str, Any] = {"incident": {"severity": "critical"}, "entities": {"source.ip": ["10.0.0.1", "10.0.0.2"]}}


def _pb(steps: list[dict[str, Any]]) -> Playbook:
    return Playbook.from_dict({"id": "pb", "steps": steps}, REG, source="pb.yml")


def _run(pb: Playbook) -> PlaybookRun:
    return PlaybookRun("R1", pb.id, "1", "INC-1", RunStatus.PENDING, T0, T0, False, initial_records(pb, "R1"))


class Sim:
    """Applies plans to an in-memory run, as the runner does to the store."""

    def __init__(self, pb: Playbook, context: dict[str, Any] | None = None) -> None:
        self.pb, self.run, self.now = pb, _run(pb), T0
        self.context = CTX if context is None else context
        self.sent: list[tuple[str, int]] = []

    def rec(self, key: str) -> StepRecord:
        return next(r for r in self.run.steps if r.ref == key)

    def apply(self, p: Plan) -> Plan:
        for t in p.transitions:
            current = next((r for r in self.run.steps if r.ref == t.new.ref), None)
            assert current == t.expected, f"stale transition for {t.new.ref}"
            steps = [t.new if r.ref == t.new.ref else r for r in self.run.steps]
            if current is None:
                steps.append(t.new)
            self.run = replace(self.run, steps=tuple(steps))
            if t.dispatch:
                self.sent.append((t.new.ref, t.new.attempt))
        self.run = replace(self.run, status=p.status, error=p.error)
        return p

    def tick(self, seconds: float = 0) -> Plan:
        self.now += timedelta(seconds=seconds)
        return self.apply(plan(self.pb, self.run, self.now, self.context, REG))

    def start(self, key: str) -> None:
        """A worker claims the queued attempt."""
        rec = self.rec(key)
        assert rec.status is StepStatus.PENDING and rec.attempt >= 1
        self.run = replace(
            self.run,
            steps=tuple(replace(r, status=StepStatus.RUNNING) if r.ref == key else r for r in self.run.steps),
        )

    def finish(self, key: str, ok: bool = True, output: Any = None, error: str = "boom") -> Plan:
        self.start(key)
        attempt = self.rec(key).attempt
        event = StepSucceeded(key, attempt, output, self.now) if ok else StepFailed(key, attempt, error, self.now)
        return self.apply(advance(self.pb, self.run, event, self.now, self.context, REG))


def test_sequence_queues_one_step_at_a_time_and_succeeds() -> None:
    sim = Sim(_pb([{"ref": "a", "action": "say"}, {"ref": "b", "action": "look"}]))
    p = sim.tick()
    assert sim.sent == [("a", 1)] and p.status is RunStatus.RUNNING
    assert p.wake_at == T0 + timedelta(seconds=300)  # the default timeout, also the dead-worker lease
    assert [t.idempotent for t in p.transitions if t.dispatch] == [False]
    assert sim.tick().transitions == ()  # nothing new until the worker reports
    p = sim.finish("a", output={"x": 1})
    assert sim.sent[-1] == ("b", 1) and p.transitions[-1].idempotent  # 'look' is declared idempotent
    p = sim.finish("b")
    assert p.status is RunStatus.SUCCEEDED and p.wake_at is None


def test_a_stale_or_redelivered_result_changes_nothing() -> None:
    sim = Sim(_pb([{"ref": "a", "action": "say"}, {"ref": "b", "action": "say"}]))
    sim.tick()
    sim.finish("a")
    again = advance(sim.pb, sim.run, StepSucceeded("a", 1, None, sim.now), sim.now, CTX, REG)
    assert again.transitions == ()  # 'a' is not queued again; 'b' is already queued
    assert sim.sent == [("a", 1), ("b", 1)]


def test_parallel_branches_start_together_and_join() -> None:
    sim = Sim(
        _pb(
            [
                {"ref": "fan", "parallel": ["l1", "r"]},
                {"ref": "l1", "action": "say", "next": "l2"},
                {"ref": "l2", "action": "say"},
                {"ref": "r", "action": "say"},
                {"ref": "after", "action": "say"},
            ]
        )
    )
    sim.tick()
    assert sorted(sim.sent) == [("l1", 1), ("r", 1)]
    sim.finish("r")
    assert ("after", 1) not in sim.sent
    sim.finish("l1")
    assert sim.sent[-1] == ("l2", 1)
    p = sim.finish("l2")
    assert sim.sent[-1] == ("after", 1) and sim.rec("fan").status is StepStatus.SUCCEEDED
    assert p.status is RunStatus.RUNNING
    assert sim.finish("after").status is RunStatus.SUCCEEDED


def test_retries_back_off_exponentially_then_compensate() -> None:
    sim = Sim(
        _pb(
            [
                {"ref": "a", "action": "say", "retries": 2, "backoff": "2s", "on_failure": "undo"},
                {"ref": "b", "action": "say"},
                {"ref": "undo", "action": "say"},
            ]
        )
    )
    sim.tick()
    p = sim.finish("a", ok=False)
    assert p.wake_at == sim.now + timedelta(seconds=2) and sim.sent == [("a", 1)]
    assert sim.tick(1.9).transitions == ()
    sim.tick(0.1)
    assert sim.sent[-1] == ("a", 2)
    p = sim.finish("a", ok=False)
    assert p.wake_at == sim.now + timedelta(seconds=4)  # 2 * 2**1
    sim.tick(4)
    assert sim.sent[-1] == ("a", 3)
    sim.finish("a", ok=False, error="still down")
    assert sim.sent[-1] == ("undo", 1) and ("b", 1) not in sim.sent
    p = sim.finish("undo")
    assert p.status is RunStatus.FAILED and "still down" in (p.error or "")


def test_permanent_failures_are_not_retried() -> None:
    sim = Sim(_pb([{"ref": "a", "action": "say", "retries": 3}]))
    sim.tick()
    sim.start("a")
    event = StepFailed("a", 1, "bad argument", sim.now, {"permanent": True})
    p = sim.apply(advance(sim.pb, sim.run, event, sim.now, CTX, REG))
    assert p.status is RunStatus.FAILED and sim.sent == [("a", 1)]


def test_timeout_fails_the_attempt_retries_and_escalates() -> None:
    sim = Sim(
        _pb(
            [
                {"ref": "a", "action": "say", "timeout": "5s", "retries": 1, "backoff": 1, "on_timeout": "esc"},
                {"ref": "esc", "action": "say"},
            ]
        )
    )
    sim.tick()
    sim.start("a")  # then the worker dies: nothing reports back
    assert sim.tick(4.9).transitions == ()
    sim.tick(0.1)
    assert sim.rec("a").status is StepStatus.FAILED and "timed out after 5 s" in (sim.rec("a").error or "")
    sim.tick(1)
    assert sim.sent[-1] == ("a", 2)  # the same step again: same idempotency key, next attempt
    sim.tick(5)  # lost again (queued, never claimed)
    assert sim.sent[-1] == ("esc", 1)
    assert sim.finish("esc").status is RunStatus.FAILED


def test_a_late_result_of_a_timed_out_attempt_is_discarded() -> None:
    sim = Sim(_pb([{"ref": "a", "action": "say", "timeout": 5, "retries": 1}]))
    sim.tick()
    sim.start("a")
    sim.tick(5)
    late = advance(sim.pb, sim.run, StepSucceeded("a", 1, {"late": True}, sim.now), sim.now, CTX, REG)
    assert all(t.new.output != {"late": True} for t in late.transitions)


def test_condition_takes_one_branch_then_continues() -> None:
    steps = [
        {"ref": "check", "if": "incident.severity == 'critical' and '10.0.0.1' in entities['source.ip']",
         "then": "hot", "else": "cold"},
        {"ref": "hot", "action": "say"},
        {"ref": "cold", "action": "say"},
        {"ref": "after", "action": "say"},
    ]  # fmt: skip
    sim = Sim(_pb(steps))
    sim.tick()
    assert sim.sent == [("hot", 1)] and sim.rec("check").output == {"value": True, "branch": "hot"}
    sim.finish("hot")
    assert sim.sent[-1] == ("after", 1) and sim.rec("cold").attempt == 0
    cold = Sim(_pb(steps), {"incident": {"severity": "low"}, "entities": {"source.ip": []}})
    cold.tick()
    assert cold.sent == [("cold", 1)]


def test_a_condition_over_a_missing_field_fails_the_step_with_the_reason() -> None:
    sim = Sim(_pb([{"ref": "c", "if": "incident.nope.deeper == 1", "then": "x"}, {"ref": "x", "action": "say"}]))
    p = sim.tick()
    assert p.status is RunStatus.FAILED and "condition" in (p.error or "")


def test_foreach_runs_one_iteration_per_entity_value() -> None:
    sim = Sim(_pb([{"ref": "each", "action": "say", "foreach": "source.ip", "args": {"text": "{{ item }}"}}]))
    sim.tick()
    assert sim.sent == [("each[0]", 1), ("each[1]", 1)]
    assert sim.rec("each").output == {"items": ["10.0.0.1", "10.0.0.2"]}
    assert split_key("each[1]") == ("each", 1) and idempotency_key("R1", "each[1]") == "R1/each[1]"
    sim.finish("each[0]")
    p = sim.finish("each[1]")
    assert p.status is RunStatus.SUCCEEDED


def _approve(sim: Sim, key: str, *users: str, approve: bool = True) -> None:
    rec = sim.rec(key)
    made = [*rec.output["decisions"], *({"user": u, "approve": approve, "reason": "ok"} for u in users)]
    sim.run = replace(
        sim.run,
        steps=tuple(replace(r, output={"decisions": made}) if r.ref == key else r for r in sim.run.steps),
    )


APPROVAL = [
    {"ref": "ok", "approval": {"roles": ["responder"], "quorum": 2}, "timeout": "10m", "on_timeout": "esc"},
    {"ref": "valve", "action": "open_valve"},
    {"ref": "esc", "action": "say"},
]


def test_approval_waits_for_a_quorum_of_distinct_people() -> None:
    sim = Sim(_pb(APPROVAL))
    p = sim.tick()
    assert p.status is RunStatus.WAITING and p.wake_at == T0 + timedelta(minutes=10)
    assert sim.rec("ok").inputs["roles"] == ["responder"] and sim.rec("ok").inputs["quorum"] == 2
    _approve(sim, "ok", "ann", "ann")  # the same person twice is one approver
    assert sim.tick().status is RunStatus.WAITING
    _approve(sim, "ok", "bob")
    sim.tick()
    assert sim.rec("ok").output["approved"] is True and sim.sent == [("valve", 1)]


def test_one_rejection_rejects_and_a_deadline_escalates() -> None:
    sim = Sim(_pb(APPROVAL))
    sim.tick()
    _approve(sim, "ok", "eve", approve=False)
    p = sim.tick()
    assert p.status is RunStatus.FAILED and "rejected" in (p.error or "") and sim.sent == []
    late = Sim(_pb(APPROVAL))
    late.tick()
    late.tick(600)
    assert late.rec("ok").output["timed_out"] is True and late.sent == [("esc", 1)]


def test_engine_refuses_an_ot_write_whose_approval_was_not_granted() -> None:
    sim = Sim(_pb(APPROVAL))
    sim.tick()
    # a tampered record: the approval step "succeeded" without the approvals that grant it
    sim.run = replace(
        sim.run,
        steps=tuple(
            replace(r, status=StepStatus.SUCCEEDED, output={"decisions": []}) if r.ref == "ok" else r
            for r in sim.run.steps
        ),
    )
    p = sim.tick()
    assert p.status is RunStatus.FAILED and "refused" in (p.error or "") and sim.sent == []


def test_finished_runs_plan_nothing() -> None:
    pb = _pb([{"ref": "a", "action": "say"}])
    done = replace(_run(pb), status=RunStatus.SUCCEEDED)
    assert plan(pb, done, T0, CTX, REG) == Plan((), RunStatus.SUCCEEDED, None)


@pytest.mark.parametrize("when", [T0, T0 + timedelta(days=3)])
def test_plans_depend_only_on_their_inputs(when: datetime) -> None:
    pb = _pb([{"ref": "a", "action": "say"}])
    assert plan(pb, _run(pb), when, CTX, REG) == plan(pb, _run(pb), when, CTX, REG)
