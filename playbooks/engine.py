"""The playbook engine: a pure state machine over a run's step records.

:func:`plan` takes a playbook, the run as stored (its step records), the time
and a read-only context, and returns what must happen next: compare-and-set
*transitions* of step records (each optionally followed by sending the step to
a worker), the run's resulting status and when to look again (the earliest
timeout or retry).  :func:`advance` first applies an event (a step finished
or failed) and then plans.  There is no clock, no Celery and no store in here;
:mod:`playbooks.runner` applies plans to a store and :mod:`playbooks.worker`
wires the tasks, so every rule below is unit-tested without a broker.

Step records (``StepRecord``) are the whole state.  Keys: a step's ref, or
``ref[i]`` for iteration ``i`` of a ``foreach`` step.  For action steps:
``PENDING`` attempt 0 = not started; ``PENDING`` attempt n = attempt n queued
(``started`` = queue time); ``RUNNING`` = a worker executes it; ``FAILED``
attempt n = attempt n failed (a retry follows after ``backoff * 2**(n-1)``
seconds while ``n <= retries``).  A queued or running attempt older than the
step timeout fails as timed out -- which is also how a run resumes after its
worker was killed: the attempt is retried with the same idempotency key,
while steps that succeeded are never started again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from playbooks.actions import ActionRegistry
from playbooks.model import ACTION, APPROVAL, CONDITION, MAX_FOREACH, PARALLEL, Playbook, Step
from playbooks.templating import TemplatingError, evaluate
from store.models import PlaybookRun, RunStatus, StepRecord, StepStatus

FINAL_RUN = (RunStatus.SUCCEEDED, RunStatus.FAILED)


@dataclass(frozen=True)
class Transition:
    """Write ``new`` if the stored record still equals ``expected``; then send it to a worker if ``dispatch``."""

    expected: StepRecord | None
    new: StepRecord
    dispatch: bool = False
    idempotent: bool = False
    audit: str = ""  # the audit action to record once the transition applied ("" = none)


@dataclass(frozen=True)
class Plan:
    transitions: tuple[Transition, ...]
    status: RunStatus
    error: str | None = None
    wake_at: datetime | None = None


@dataclass(frozen=True)
class StepSucceeded:
    key: str
    attempt: int
    output: Any
    at: datetime


@dataclass(frozen=True)
class StepFailed:
    key: str
    attempt: int
    error: str
    at: datetime
    output: Any = None


Event = StepSucceeded | StepFailed


def idempotency_key(run_id: str, key: str) -> str:
    """The same for every attempt of one step (or iteration): receivers deduplicate on it."""
    return f"{run_id}/{key}"


def iteration_key(ref: str, index: int) -> str:
    return f"{ref}[{index}]"


def split_key(key: str) -> tuple[str, int | None]:
    """``ref[3]`` -> (ref, 3); ``ref`` -> (ref, None)."""
    if key.endswith("]") and "[" in key:
        ref, _, index = key[:-1].rpartition("[")
        if index.isdigit():
            return ref, int(index)
    return key, None


def is_idempotent(registry: ActionRegistry, action: str) -> bool:
    """Declared by the action (``@action(..., idempotent=True)``): only those are acked late."""
    return registry.get(action).idempotent


def initial_records(playbook: Playbook, run_id: str) -> tuple[StepRecord, ...]:
    """Every step pending, in file order (so a run shows its whole plan from the start)."""
    return tuple(
        StepRecord(run_id, s.ref, s.action or s.kind, StepStatus.PENDING, 0, None, None, dict(s.args))
        for s in playbook.steps
    )


def apply_event(run: PlaybookRun, event: Event) -> Transition | None:
    """The transition that records a worker's result, or None when the result is stale (e.g. timed out)."""
    current = next((r for r in run.steps if r.ref == event.key), None)
    if current is None or current.status is not StepStatus.RUNNING or current.attempt != event.attempt:
        return None  # the attempt timed out meanwhile, or this is a redelivered result
    if isinstance(event, StepSucceeded):
        new = replace(current, status=StepStatus.SUCCEEDED, finished=event.at, output=event.output, error=None)
        return Transition(current, new, audit="step.succeeded")
    new = replace(current, status=StepStatus.FAILED, finished=event.at, error=event.error, output=event.output)
    return Transition(current, new, audit="step.failed")


def advance(
    playbook: Playbook,
    run: PlaybookRun,
    event: Event | None,
    now: datetime,
    context: Mapping[str, Any],
    registry: ActionRegistry,
) -> Plan:
    """Apply ``event`` (if any) and plan what follows."""
    first = apply_event(run, event) if event is not None else None
    if first is not None:
        run = replace(run, steps=_replace_record(run.steps, first.new))
    planned = plan(playbook, run, now, context, registry)
    if first is None:
        return planned
    return replace(planned, transitions=(first, *planned.transitions))


def plan(
    playbook: Playbook, run: PlaybookRun, now: datetime, context: Mapping[str, Any], registry: ActionRegistry
) -> Plan:
    """What to do next for ``run`` at ``now``."""
    if run.status in FINAL_RUN:
        return Plan((), run.status, run.error)
    planner = _Planner(playbook, run, now, context, registry)
    outcome, error = planner.chain(playbook.entry.ref)
    if outcome == _RUNNING:
        waiting = planner.active and all(planner.step_of(k).kind == APPROVAL for k in planner.active)
        status = RunStatus.WAITING if waiting else RunStatus.RUNNING
    else:
        status = RunStatus.SUCCEEDED if outcome == _OK else RunStatus.FAILED
    return Plan(tuple(planner.transitions), status, error, planner.wake_at if outcome == _RUNNING else None)


def _replace_record(records: tuple[StepRecord, ...], new: StepRecord) -> tuple[StepRecord, ...]:
    out = [new if r.ref == new.ref else r for r in records]
    if not any(r.ref == new.ref for r in records):
        out.append(new)
    return tuple(out)


_RUNNING, _OK, _FAILED = "running", "ok", "failed"


def settled(rec: StepRecord, done: tuple[StepStatus, ...] = (StepStatus.SUCCEEDED,)) -> tuple[str, str | None] | None:
    """The outcome of a step that finished on an earlier pass; None while it is pending or running."""
    if rec.status in done:
        return _OK, None
    if rec.status is StepStatus.FAILED:
        return _FAILED, rec.error
    return None


@dataclass
class _Planner:
    playbook: Playbook
    run: PlaybookRun
    now: datetime
    context: Mapping[str, Any]
    registry: ActionRegistry
    transitions: list[Transition] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    wake_at: datetime | None = None

    def __post_init__(self) -> None:
        self.records: dict[str, StepRecord] = {r.ref: r for r in self.run.steps}

    def step_of(self, key: str) -> Step:
        return self.playbook.step(split_key(key)[0])

    # bookkeeping ------------------------------------------------------------------
    def move(self, key: str, new: StepRecord, dispatch: bool = False, audit: str = "") -> StepRecord:
        step = self.step_of(key)
        idempotent = dispatch and is_idempotent(self.registry, step.action)
        self.transitions.append(Transition(self.records.get(key), new, dispatch, idempotent, audit))
        self.records[key] = new
        return new

    def wake(self, at: datetime) -> None:
        if self.wake_at is None or at < self.wake_at:
            self.wake_at = at

    def record(self, key: str, step: Step) -> StepRecord:
        rec = self.records.get(key)
        if rec is None:
            rec = StepRecord(self.run.id, key, step.action or step.kind, StepStatus.PENDING, 0, None, None, {})
        return rec

    def fail(self, key: str, rec: StepRecord, error: str, **output: Any) -> tuple[str, str | None]:
        out = dict(rec.output) if isinstance(rec.output, Mapping) else {}
        out.update(output)
        self.move(
            key, replace(rec, status=StepStatus.FAILED, finished=self.now, error=error, output=out), audit="step.failed"
        )
        return _FAILED, error

    def succeed(self, key: str, rec: StepRecord, **output: Any) -> tuple[str, str | None]:
        out = dict(rec.output) if isinstance(rec.output, Mapping) else {}
        out.update(output)
        self.move(
            key,
            replace(rec, status=StepStatus.SUCCEEDED, finished=self.now, output=out, error=None),
            audit="step.succeeded",
        )
        return _OK, None

    # control flow -----------------------------------------------------------------------
    def chain(self, head: str) -> tuple[str, str | None]:
        ref: str | None = head
        while ref is not None:
            step = self.playbook.step(ref)
            outcome, error = self.step(step)
            if outcome == _RUNNING:
                return _RUNNING, None
            if outcome == _FAILED:
                rec = self.records.get(ref)
                timed_out = bool(rec and isinstance(rec.output, Mapping) and rec.output.get("timed_out"))
                handler = step.on_timeout if timed_out and step.on_timeout else step.on_failure
                if handler:
                    # compensation / escalation runs, and the chain still ends failed
                    h_outcome, _ = self.chain(handler)
                    if h_outcome == _RUNNING:
                        return _RUNNING, None
                return _FAILED, error or f"step {ref!r} failed"
            ref = self.playbook.chain_next.get(ref)
        return _OK, None

    def step(self, step: Step) -> tuple[str, str | None]:
        if step.kind == ACTION:
            return self.foreach(step) if step.foreach else self.action(step.ref, step)
        if step.kind == PARALLEL:
            return self.parallel(step)
        if step.kind == CONDITION:
            return self.condition(step)
        return self.approval(step)

    def action(self, key: str, step: Step) -> tuple[str, str | None]:
        rec = self.record(key, step)
        if rec.status is StepStatus.SUCCEEDED or rec.status is StepStatus.SKIPPED:
            return _OK, None
        if rec.status is StepStatus.PENDING and rec.attempt == 0:
            refusal = self.refusal(step)
            if refusal:
                return self.fail(key, rec, refusal, refused=True)
            return self.queue(key, rec, 1)
        if rec.status in (StepStatus.PENDING, StepStatus.RUNNING):
            deadline = (rec.started or self.now) + timedelta(seconds=step.effective_timeout)
            if self.now >= deadline:
                phase = "queued" if rec.status is StepStatus.PENDING else "running"
                error = f"timed out after {step.effective_timeout:g} s ({phase}, attempt {rec.attempt})"
                rec = self.move(
                    key,
                    replace(rec, status=StepStatus.FAILED, finished=self.now, error=error, output={"timed_out": True}),
                    audit="step.timed_out",
                )
            else:
                self.active.append(key)
                self.wake(deadline)
                return _RUNNING, None
        # FAILED
        permanent = isinstance(rec.output, Mapping) and (rec.output.get("refused") or rec.output.get("permanent"))
        if rec.attempt <= step.retries and not permanent:
            due = (rec.finished or self.now) + timedelta(seconds=step.backoff_seconds(rec.attempt))
            if self.now >= due:
                return self.queue(key, rec, rec.attempt + 1)
            self.active.append(key)
            self.wake(due)
            return _RUNNING, None
        return _FAILED, f"step {key!r} failed: {rec.error}"

    def queue(self, key: str, rec: StepRecord, attempt: int) -> tuple[str, str | None]:
        step = self.step_of(key)
        new = replace(
            rec,
            action=step.action,
            status=StepStatus.PENDING,
            attempt=attempt,
            started=self.now,
            finished=None,
            error=None,
            output=None,
        )
        self.move(key, new, dispatch=True, audit="step.queued")
        self.active.append(key)
        self.wake(self.now + timedelta(seconds=step.effective_timeout))
        return _RUNNING, None

    def refusal(self, step: Step) -> str | None:
        """Run-time safety check for OT-write steps, independent of validation."""
        if not self.playbook.guarded(step, self.registry):
            return None
        guards = self.playbook.guards.get(step.ref, ())
        approved = [g for g in guards if self._approved(g)]
        if not approved:
            return (
                f"refused: action {step.action!r} writes to OT / cuts a public service and no approval step "
                "before it was approved in this run"
            )
        return None

    def _approved(self, ref: str) -> bool:
        rec = self.records.get(ref)
        return bool(
            rec is not None
            and rec.status is StepStatus.SUCCEEDED
            and isinstance(rec.output, Mapping)
            and rec.output.get("approved") is True
        )

    def foreach(self, step: Step) -> tuple[str, str | None]:
        rec = self.record(step.ref, step)
        if (finished := settled(rec, done=(StepStatus.SUCCEEDED, StepStatus.SKIPPED))) is not None:
            return finished
        if rec.status is StepStatus.PENDING:
            refusal = self.refusal(step)
            if refusal:
                return self.fail(step.ref, rec, refusal, refused=True)
            entities = self.context.get("entities", {})
            values = entities.get(step.foreach, []) if isinstance(entities, Mapping) else []
            items = [str(v) for v in (values if isinstance(values, list | tuple) else [values])][:MAX_FOREACH]
            rec = self.move(
                step.ref, replace(rec, status=StepStatus.RUNNING, attempt=1, started=self.now, output={"items": items})
            )
        items = list(rec.output.get("items", [])) if isinstance(rec.output, Mapping) else []
        outcomes = [self.action(iteration_key(step.ref, i), step) for i in range(len(items))]
        if any(o == _RUNNING for o, _ in outcomes):
            return _RUNNING, None
        failed = [e for o, e in outcomes if o == _FAILED]
        if failed:
            return self.fail(step.ref, rec, f"{len(failed)} of {len(items)} iterations failed: {failed[0]}")
        return self.succeed(step.ref, rec)

    def parallel(self, step: Step) -> tuple[str, str | None]:
        rec = self.record(step.ref, step)
        if (finished := settled(rec)) is not None:
            return finished
        if rec.status is StepStatus.PENDING:
            rec = self.move(step.ref, replace(rec, status=StepStatus.RUNNING, attempt=1, started=self.now))
        outcomes = [self.chain(head) for head in step.branches]
        if any(o == _RUNNING for o, _ in outcomes):
            return _RUNNING, None
        failed = [e for o, e in outcomes if o == _FAILED]
        if failed:
            return self.fail(step.ref, rec, f"branch failed: {failed[0]}")
        return self.succeed(step.ref, rec)

    def condition(self, step: Step) -> tuple[str, str | None]:
        rec = self.record(step.ref, step)
        if (finished := settled(rec)) is not None:
            return finished
        if rec.status is StepStatus.PENDING:
            try:
                value = evaluate(step.condition or "false", self.context)
            except TemplatingError as exc:
                return self.fail(step.ref, rec, str(exc))
            branch = step.then if value else step.otherwise
            rec = self.move(
                step.ref,
                replace(
                    rec,
                    status=StepStatus.RUNNING,
                    attempt=1,
                    started=self.now,
                    output={"value": value, "branch": branch},
                ),
                audit="step.condition",
            )
        branch = rec.output.get("branch") if isinstance(rec.output, Mapping) else None
        outcome, error = self.chain(branch) if branch else (_OK, None)
        if outcome == _RUNNING:
            return _RUNNING, None
        if outcome == _FAILED:
            return self.fail(step.ref, rec, error or "branch failed")
        return self.succeed(step.ref, rec)

    def approval(self, step: Step) -> tuple[str, str | None]:
        assert step.approval is not None  # the model guarantees it for approval steps
        rec = self.record(step.ref, step)
        if (finished := settled(rec)) is not None:
            return finished
        if rec.status is StepStatus.PENDING:
            deadline = self.now + timedelta(seconds=step.effective_timeout)
            inputs = {
                "roles": list(step.approval.roles),
                "quorum": step.approval.quorum,
                "description": step.approval.description or step.description,
                "impact": step.approval.impact,
                "deadline": deadline.isoformat(),
                "playbook": self.playbook.id,
                "incident_id": self.run.incident_id,
            }
            rec = self.move(
                step.ref,
                replace(
                    rec, status=StepStatus.RUNNING, attempt=1, started=self.now, inputs=inputs, output={"decisions": []}
                ),
                audit="approval.requested",
            )
        verdict = approval_verdict(rec, step)
        if verdict is True:
            return self.succeed(step.ref, rec, approved=True)
        if verdict is False:
            return self.fail(step.ref, rec, "rejected: " + rejection_reason(rec), rejected=True)
        deadline = (rec.started or self.now) + timedelta(seconds=step.effective_timeout)
        if self.now >= deadline:
            return self.fail(step.ref, rec, f"approval timed out after {step.effective_timeout:g} s", timed_out=True)
        self.active.append(step.ref)
        self.wake(deadline)
        return _RUNNING, None


def decisions(rec: StepRecord) -> list[Mapping[str, Any]]:
    out = rec.output.get("decisions", []) if isinstance(rec.output, Mapping) else []
    return list(out)


def approval_verdict(rec: StepRecord, step: Step) -> bool | None:
    """True when ``quorum`` distinct approvers said yes, False on any rejection, None while undecided."""
    assert step.approval is not None
    made = decisions(rec)
    if any(not d.get("approve") for d in made):
        return False
    approvers = {d.get("user") for d in made if d.get("approve")}
    return True if len(approvers) >= step.approval.quorum else None


def rejection_reason(rec: StepRecord) -> str:
    rejected = [d for d in decisions(rec) if not d.get("approve")]
    return "; ".join(f"{d.get('user')}: {d.get('reason')}" for d in rejected) or "rejected"
