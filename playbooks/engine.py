"""Running a playbook: a state machine over the step graph, recording every step.

:func:`execute_run` is plain library code (Celery tasks only call it), so the
engine is testable without a broker.  A step that already succeeded is never
run again, so a redelivered task resumes a run without repeating side effects.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from playbooks.actions import ActionContext, ActionError, ActionRegistry, Impact, render_args
from playbooks.model import Playbook, PlaybookError, PlaybookLibrary, Step
from store.base import Store
from store.event import format_ts
from store.models import PlaybookRun, RunStatus, StepRecord, StepStatus

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_run(
    store: Store, playbook: Playbook, incident_id: str | None, registry: ActionRegistry, drill: bool = False
) -> PlaybookRun:
    """Create a pending run with every step pending."""
    now = _now()
    run_id = "RUN-" + uuid.uuid4().hex[:12].upper()
    steps = tuple(
        StepRecord(run_id, s.ref, s.action, StepStatus.PENDING, 0, None, None, dict(s.args)) for s in playbook.steps
    )
    run = store.create_run(
        PlaybookRun(
            id=run_id,
            playbook=playbook.id,
            playbook_version=f"{playbook.version}+actions.{registry.version}",
            incident_id=incident_id,
            status=RunStatus.PENDING,
            created=now,
            updated=now,
            drill=drill,
            steps=steps,
        )
    )
    store.audit("playbooks", "run.created", run_id, {"playbook": playbook.id, "incident": incident_id, "drill": drill})
    return run


def template_context(store: Store, incident_id: str | None) -> dict[str, Any]:
    """What step templates may read: the incident and its alerts, as plain data."""
    if incident_id is None:
        return {"incident": {}, "alerts": [], "entities": {}}
    incident = store.get_incident(incident_id)
    alerts = store.list_alerts(incident_id=incident_id)
    inc = asdict(incident)
    inc["entities"] = {k: list(v) for k, v in incident.entities.items()}
    inc["severity"] = incident.severity.label
    inc["status"] = incident.status.value
    return {
        "incident": inc,
        "alerts": [
            {"id": a.id, "rule_id": a.rule_id, "rule_title": a.rule_title, "entities": dict(a.entities)} for a in alerts
        ],
        "entities": inc["entities"],
    }


def execute_run(
    store: Store,
    run_id: str,
    library: PlaybookLibrary,
    registry: ActionRegistry,
    home: Path,
    backoff_seconds: float = 0.5,
) -> PlaybookRun:
    """Run (or resume) a playbook run to its end; returns the final record."""
    run = store.get_run(run_id)
    if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        return run
    try:
        playbook = library.get(run.playbook)
    except PlaybookError as exc:
        store.set_run_status(run_id, RunStatus.FAILED, str(exc))
        return store.get_run(run_id)
    store.set_run_status(run_id, RunStatus.RUNNING)
    done = {s.ref: s for s in run.steps}
    ctx = ActionContext(store=store, run_id=run_id, incident_id=run.incident_id, home=home, drill=run.drill)
    step: Step | None = playbook.entry
    failure: str | None = None
    while step is not None:
        record = done.get(step.ref)
        if record is not None and record.status is StepStatus.SUCCEEDED:
            step = playbook.successor(step, failed=False)  # completed before a redelivery: never repeat it
            continue
        ok, error = _run_step(store, ctx, playbook, step.ref, registry, backoff_seconds)
        if not ok and failure is None:
            # the run ends failed even when an on_failure (compensation) branch runs after this
            failure = f"step {step.ref!r} failed: {error}"
        step = playbook.successor(step, failed=not ok)
    status = RunStatus.FAILED if failure else RunStatus.SUCCEEDED
    store.set_run_status(run_id, status, failure)
    store.audit("playbooks", f"run.{status.value}", run_id, {"playbook": playbook.id, "error": failure})
    if run.incident_id:
        store.append_timeline(
            run.incident_id,
            "playbook",
            "playbooks",
            {"run_id": run_id, "playbook": playbook.id, "status": status.value, "error": failure},
        )
    return store.get_run(run_id)


def _run_step(
    store: Store, ctx: ActionContext, playbook: Playbook, ref: str, registry: ActionRegistry, backoff_seconds: float
) -> tuple[bool, str | None]:
    step = playbook.step(ref)
    spec = registry.get(step.action)
    error: str | None = None
    for attempt in range(1, step.retries + 2):
        started = _now()
        inputs: Mapping[str, Any] = step.args
        try:
            if spec.impact is Impact.OT_WRITE and not ctx.drill:
                raise ActionError(
                    f"action {spec.name!r} writes to OT and needs an approved dry-run first; "
                    "run this playbook as a drill"
                )
            inputs = render_args(step.args, template_context(store, ctx.incident_id))
            args = spec.coerce(inputs)
            store.record_step(
                StepRecord(ctx.run_id, ref, step.action, StepStatus.RUNNING, attempt, started, None, dict(inputs))
            )
            output = spec.func(ctx, **args)
        except (ActionError, PlaybookError, ValueError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            store.record_step(
                StepRecord(
                    ctx.run_id, ref, step.action, StepStatus.FAILED, attempt, started, _now(), dict(inputs), None, error
                )
            )
            store.audit(ctx.actor, "step.failed", f"{ctx.run_id}/{ref}", {"attempt": attempt, "error": error})
            if attempt <= step.retries:
                time.sleep(backoff_seconds * 2 ** (attempt - 1))
            continue
        store.record_step(
            StepRecord(
                ctx.run_id, ref, step.action, StepStatus.SUCCEEDED, attempt, started, _now(), dict(inputs), output
            )
        )
        store.audit(
            ctx.actor,
            "step.succeeded",
            f"{ctx.run_id}/{ref}",
            {"action": step.action, "inputs": dict(inputs), "output": output, "at": format_ts(_now())},
        )
        return True, None
    return False, error
