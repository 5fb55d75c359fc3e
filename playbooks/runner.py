"""Applying engine plans to a store: creating runs, driving them, executing one step.

:class:`Runner` is the library code behind the Celery tasks (which only pass
ids).  ``drive`` plans a run and applies the plan with compare-and-set writes
(:meth:`store.base.Store.swap_step`), so any number of workers can drive the
same run at once and each transition -- queueing an attempt, recording its
result, timing it out -- happens exactly once; a step is sent to a worker only
by the process whose queueing write won.  ``execute`` runs one queued attempt:
it claims it (``PENDING`` -> ``RUNNING``) first, so a redelivered message for
an attempt already claimed or finished does nothing.  Every transition, input,
output and error goes to the hash-chained audit log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from playbooks.actions import ActionContext, ActionError, ActionRegistry, TransientActionError
from playbooks.engine import (
    FINAL_RUN,
    Plan,
    StepFailed,
    StepSucceeded,
    Transition,
    advance,
    idempotency_key,
    initial_records,
    split_key,
)
from playbooks.model import Playbook, PlaybookError, PlaybookLibrary
from playbooks.templating import TemplatingError, render_args
from store.base import Store
from store.errors import NotFound
from store.event import format_ts
from store.models import PlaybookRun, RunStatus, StepRecord, StepStatus

log = logging.getLogger(__name__)

ACTOR = "playbooks"
#: Argument names whose values never go to the audit log or step records in clear.
SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey", "credential", "private_key")


class StepSender(Protocol):
    """Sends one queued step attempt to a worker (Celery ``send_task`` in production)."""

    def __call__(self, run_id: str, key: str, attempt: int, idempotent: bool) -> None: ...


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def redact(value: Any) -> Any:
    """Mask values under secret-looking keys (connector secrets must never reach the audit log)."""
    if isinstance(value, Mapping):
        return {k: "***" if any(w in str(k).lower() for w in SECRET_WORDS) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def new_run(
    store: Store,
    playbook: Playbook,
    incident_id: str | None,
    registry: ActionRegistry,
    drill: bool = False,
    now: datetime | None = None,
) -> PlaybookRun:
    """Create a pending run with every step pending; it starts when a worker drives it."""
    at = now or utcnow()
    run_id = "RUN-" + uuid.uuid4().hex[:12].upper()
    run = store.create_run(
        PlaybookRun(
            id=run_id,
            playbook=playbook.id,
            playbook_version=f"{playbook.version}+actions.{registry.version}",
            incident_id=incident_id,
            status=RunStatus.PENDING,
            created=at,
            updated=at,
            drill=drill,
            steps=initial_records(playbook, run_id),
        )
    )
    store.audit(ACTOR, "run.created", run_id, {"playbook": playbook.id, "incident": incident_id, "drill": drill})
    return run


class LazyContext(Mapping[str, Any]):
    """The template/condition context, read from the store only when a template or condition needs it."""

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._build = build
        self._data: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._build()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def template_context(store: Store, run: PlaybookRun, key: str | None = None) -> dict[str, Any]:
    """What templates and conditions may read, as plain data (never objects with methods)."""
    ctx: dict[str, Any] = {"incident": {}, "alerts": [], "entities": {}, "event": {}}
    if run.incident_id is not None:
        incident = store.get_incident(run.incident_id)
        alerts = store.list_alerts(incident_id=run.incident_id)
        inc = asdict(incident)
        inc["entities"] = {k: list(v) for k, v in incident.entities.items()}
        inc["severity"] = incident.severity.label
        inc["status"] = incident.status.value
        inc["tags"] = list(incident.tags)
        for name in ("created", "updated", "first_event_time", "last_event_time"):
            inc[name] = format_ts(getattr(incident, name))
        ctx["incident"] = inc
        ctx["entities"] = inc["entities"]
        ctx["alerts"] = [
            {
                "id": a.id,
                "rule_id": a.rule_id,
                "rule_title": a.rule_title,
                "severity": a.severity.label,
                "entities": dict(a.entities),
                "tags": list(a.tags),
            }
            for a in alerts
        ]
        last_ids = [a.event_ids[-1] for a in alerts if a.event_ids]
        events = store.get_events(last_ids) if last_ids else []
        if events:
            ctx["event"] = {k: list(v) if isinstance(v, tuple) else v for k, v in events[-1].fields.items()}
    ctx["steps"] = {r.ref: r.output for r in run.steps if r.status is StepStatus.SUCCEEDED and "[" not in r.ref}
    ctx["run"] = {"id": run.id, "playbook": run.playbook, "drill": run.drill}
    if key is not None:
        ref, index = split_key(key)
        ctx["idempotency_key"] = idempotency_key(run.id, key)
        if index is not None:
            parent = next((r for r in run.steps if r.ref == ref), None)
            items = parent.output.get("items", []) if parent and isinstance(parent.output, Mapping) else []
            ctx["item"] = items[index] if index < len(items) else None
    return ctx


@dataclass
class Runner:
    store: Store
    library: PlaybookLibrary
    registry: ActionRegistry
    home: Path
    send: StepSender | None = None
    clock: Callable[[], datetime] = utcnow
    max_rounds: int = 50
    #: Run the first step a plan queues in this process instead of sending it (saves a broker round trip
    #: per step in a sequence; further steps queued by the same plan, e.g. parallel branches, are sent).
    inline: bool = False

    def __post_init__(self) -> None:
        self._inline: list[tuple[str, str, int, bool]] = []

    def run_task(self, run_id: str) -> RunStatus:
        """The body of the run task: drive, then execute inline work until none is left."""
        status = self.drive(run_id).status
        self._drain()
        return status

    def step_task(self, run_id: str, key: str, attempt: int, takeover: bool = False) -> None:
        """The body of the step tasks."""
        self.execute(run_id, key, attempt, takeover)
        self._drain()

    def _drain(self) -> None:
        while self._inline:
            run_id, key, attempt, _idempotent = self._inline.pop(0)
            self.execute(run_id, key, attempt, takeover=False)

    # driving --------------------------------------------------------------------------
    def drive(self, run_id: str, event: StepSucceeded | StepFailed | None = None) -> Plan:
        """Plan and apply until the plan is fully applied; returns the last plan."""
        last = Plan((), RunStatus.PENDING)
        for _ in range(self.max_rounds):
            run = self.store.get_run(run_id)
            if run.status in FINAL_RUN:
                return Plan((), run.status, run.error)
            try:
                playbook = self.library.get(run.playbook)
            except PlaybookError as exc:
                self.finish(run, RunStatus.FAILED, str(exc))
                return Plan((), RunStatus.FAILED, str(exc))
            context = LazyContext(lambda run=run: template_context(self.store, run))  # type: ignore[misc]
            last = advance(playbook, run, event, self.clock(), context, self.registry)
            event = None  # the event is applied (or stale) after the first round
            if self.apply(run, last.transitions):
                if last.status in FINAL_RUN:
                    self.finish(run, last.status, last.error)
                elif last.status is not run.status:
                    self.store.set_run_status(run_id, last.status)
                return last
        log.warning("run %s: gave up after %d contended rounds; the sweeper retries", run_id, self.max_rounds)
        return last

    def apply(self, run: PlaybookRun, transitions: tuple[Transition, ...]) -> bool:
        """Apply in order; False (re-plan) as soon as one lost its race."""
        for t in transitions:
            if not self.store.swap_step(t.expected, t.new):
                return False
            if t.audit:
                self.store.audit(ACTOR, t.audit, f"{run.id}/{t.new.ref}", _audit_details(t.new))
            if t.dispatch and self.inline and not self._inline:
                self._inline.append((run.id, t.new.ref, t.new.attempt, t.idempotent))
            elif t.dispatch and self.send is not None:
                self.send(run.id, t.new.ref, t.new.attempt, t.idempotent)
        return True

    def finish(self, run: PlaybookRun, status: RunStatus, error: str | None) -> None:
        current = self.store.get_run(run.id)
        if current.status in FINAL_RUN:
            return  # another worker finished it first
        self.store.set_run_status(run.id, status, error)
        self.store.audit(ACTOR, f"run.{status.value}", run.id, {"playbook": run.playbook, "error": error})
        if run.incident_id:
            self.store.append_timeline(
                run.incident_id,
                "playbook",
                ACTOR,
                {
                    "run_id": run.id,
                    "playbook": run.playbook,
                    "status": status.value,
                    "error": error,
                    "drill": run.drill,
                },
            )

    # executing one attempt ------------------------------------------------------------------
    def execute(self, run_id: str, key: str, attempt: int, takeover: bool = False) -> None:
        """Run attempt ``attempt`` of step ``key`` once, then drive the run on.

        ``takeover``: a redelivered message of an idempotent step may re-run an attempt that
        a dead worker had claimed; for any other step the attempt's timeout retries it.
        """
        try:
            run = self.store.get_run(run_id)
        except NotFound:
            log.warning("step %s/%s: no such run (deleted?); dropping the task", run_id, key)
            return
        if run.status in FINAL_RUN:
            return
        rec = next((r for r in run.steps if r.ref == key), None)
        claimable = (
            rec is not None
            and rec.attempt == attempt
            and (rec.status is StepStatus.PENDING or (takeover and rec.status is StepStatus.RUNNING))
        )
        if rec is None or not claimable:
            return  # finished, timed out or claimed elsewhere: never repeat a side effect
        playbook = self.library.get(run.playbook)
        step = playbook.step(split_key(key)[0])
        spec = self.registry.get(step.action)
        started = self.clock()
        context = template_context(self.store, run, key)
        try:
            inputs = render_args(step.args, context)
            args = spec.coerce(inputs)
        except (TemplatingError, ActionError) as exc:
            # the arguments themselves are wrong: retrying cannot help
            claimed = replace(rec, status=StepStatus.RUNNING, started=started)
            if self.store.swap_step(rec, claimed):
                error = f"{type(exc).__name__}: {exc}"
                self.drive(run_id, StepFailed(key, attempt, error, self.clock(), {"permanent": True}))
            return
        claimed = replace(rec, status=StepStatus.RUNNING, started=started, inputs=redact(inputs))
        if not self.store.swap_step(rec, claimed):
            return  # another worker claimed this attempt first
        self.store.audit(
            ACTOR,
            "step.started",
            f"{run_id}/{key}",
            {
                "action": step.action,
                "attempt": attempt,
                "inputs": redact(inputs),
                "idempotency_key": idempotency_key(run_id, key),
            },
        )
        event: StepSucceeded | StepFailed
        try:
            output = self.call(spec.name, run, key, args, guarded=playbook.guarded(step, self.registry))
            event = StepSucceeded(key, attempt, redact(output), self.clock())
        except TransientActionError as exc:
            event = StepFailed(key, attempt, f"{type(exc).__name__}: {exc}", self.clock())
        except (ActionError, TemplatingError, PlaybookError, ValueError, TypeError, OSError) as exc:
            # a failing action is a step failure (compensated), not a worker crash; only transient ones are retried
            transient = isinstance(exc, OSError)
            output = None if transient else {"permanent": True}
            event = StepFailed(key, attempt, f"{type(exc).__name__}: {exc}", self.clock(), output)
        self.drive(run_id, event)

    def call(self, action: str, run: PlaybookRun, key: str, args: Mapping[str, Any], guarded: bool) -> Any:
        """Call the action; OT-write (guarded) actions always run a dry-run first and stop if it fails."""
        spec = self.registry.get(action)
        if spec.impact.needs_approval and not guarded:
            raise ActionError(f"action {action!r} has impact {spec.impact.value} and no approval guards it here")
        if run.drill or guarded:
            dry = spec.func(self._ctx(run, key, drill=True), **args)
            if run.drill:
                return dry
            real = spec.func(self._ctx(run, key, drill=False), **args)
            return {"dry_run": dry, "result": real}
        return spec.func(self._ctx(run, key, drill=False), **args)

    def _ctx(self, run: PlaybookRun, key: str, drill: bool) -> ActionContext:
        return ActionContext(
            store=self.store,
            run_id=run.id,
            incident_id=run.incident_id,
            home=self.home,
            drill=drill,
            actor=ACTOR,
            step=key,
            idempotency_key=idempotency_key(run.id, key),
        )


def _audit_details(rec: StepRecord) -> dict[str, Any]:
    return {
        "action": rec.action,
        "status": rec.status.value,
        "attempt": rec.attempt,
        "inputs": redact(dict(rec.inputs)),
        "output": redact(rec.output),
        "error": rec.error,
    }
