"""Drill mode: run any playbook with every action simulated, and report what would have happened.

:func:`run_drill` creates a drill run (``drill=True``: each action is called
with ``ctx.drill`` set and only simulates, recording "would do X with these
arguments") and drives it in this process, with the same engine and runner as
production runs.  Approval steps are decided by a scripted approver (a
callable, or a mapping step ref -> decisions) or stay *awaiting* in the
report.  Retry backoffs are skipped on a virtual clock, so a drill takes as
long as its simulated actions.  The :class:`DrillReport` has per-step timings,
who approved, and the simulated effects, as JSON and as Markdown.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from playbooks.actions import REGISTRY, ActionRegistry
from playbooks.approvals import ApprovalError, PendingApproval, decide, pending_approvals
from playbooks.engine import FINAL_RUN, split_key
from playbooks.model import Playbook, PlaybookLibrary
from playbooks.runner import Runner, new_run
from store.base import Store
from store.errors import EventValidationError, NotFound
from store.event import Event, parse_ts, stable_id
from store.models import Alert, Incident, IncidentStatus, RunStatus, Severity, StepStatus


@dataclass(frozen=True)
class ScriptedDecision:
    user: str
    roles: tuple[str, ...]
    approve: bool = True
    reason: str = "drill: scripted decision"


ApproverScript = Callable[[PendingApproval], Iterable[ScriptedDecision]] | Mapping[str, Sequence[ScriptedDecision]]


def approve_all(*people: tuple[str, Sequence[str]]) -> ApproverScript:
    """A script where each (user, roles) approves every approval step it is entitled to."""

    def script(pending: PendingApproval) -> list[ScriptedDecision]:
        return [ScriptedDecision(user, tuple(roles)) for user, roles in people]

    return script


@dataclass(frozen=True)
class StepReport:
    key: str
    kind: str
    action: str
    status: str
    attempts: int
    duration_ms: float | None
    inputs: Mapping[str, Any]
    would_have: Any
    error: str | None


@dataclass(frozen=True)
class ApprovalReport:
    step: str
    status: str  # approved, rejected, awaiting, timed out
    required_roles: tuple[str, ...]
    quorum: int
    decisions: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class DrillReport:
    playbook: str
    playbook_version: str
    run_id: str
    incident_id: str | None
    status: str
    error: str | None
    started: datetime
    duration_ms: float
    steps: tuple[StepReport, ...]
    approvals: tuple[ApprovalReport, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "playbook_version": self.playbook_version,
            "run_id": self.run_id,
            "incident_id": self.incident_id,
            "status": self.status,
            "error": self.error,
            "started": self.started.isoformat(),
            "duration_ms": round(self.duration_ms, 3),
            "steps": [
                {
                    "key": s.key,
                    "kind": s.kind,
                    "action": s.action,
                    "status": s.status,
                    "attempts": s.attempts,
                    "duration_ms": s.duration_ms,
                    "inputs": dict(s.inputs),
                    "would_have": s.would_have,
                    "error": s.error,
                }
                for s in self.steps
            ],
            "approvals": [
                {
                    "step": a.step,
                    "status": a.status,
                    "required_roles": list(a.required_roles),
                    "quorum": a.quorum,
                    "decisions": [dict(d) for d in a.decisions],
                }
                for a in self.approvals
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, default=str)

    def to_markdown(self) -> str:
        lines = [
            f"# Drill report: {self.playbook} (version {self.playbook_version})",
            "",
            f"- run: `{self.run_id}`; incident: `{self.incident_id or '-'}`",
            f"- started: {self.started.isoformat()}; duration: {self.duration_ms:.1f} ms",
            f"- outcome: **{self.status}**" + (f" ({_md(self.error)})" if self.error else ""),
            "",
            "## Steps",
            "",
            "| step | kind | action | status | attempts | ms | would have |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in self.steps:
            would = json.dumps(s.would_have, ensure_ascii=False, default=str) if s.would_have is not None else ""
            lines.append(
                f"| {_md(s.key)} | {s.kind} | {_md(s.action)} | {s.status} | {s.attempts} | "
                f"{'' if s.duration_ms is None else f'{s.duration_ms:.1f}'} | {_md(would)}"
                f"{' — ' + _md(s.error) if s.error else ''} |"
            )
        lines += ["", "## Approvals", ""]
        if not self.approvals:
            lines.append("No approval steps were reached.")
        for a in self.approvals:
            lines.append(f"- `{a.step}`: **{a.status}** (roles {', '.join(a.required_roles)}, quorum {a.quorum})")
            for d in a.decisions:
                verdict = "approved" if d.get("approve") else "rejected"
                lines.append(f"  - {_md(str(d.get('user')))} {verdict} at {d.get('at')}: {_md(str(d.get('reason')))}")
        return "\n".join(lines) + "\n"


def _md(text: str | None) -> str:
    """Table-safe: event content in a report must not break (or inject into) the Markdown."""
    return (text or "").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


class _Clock:
    """Real time plus skipped waits: timings stay real, backoffs and deadlines pass at once."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def skip_to(self, at: datetime) -> None:
        now = self()
        if at > now:
            self.offset += at - now


def run_drill(
    store: Store,
    playbook: Playbook,
    incident: Incident | str | None,
    approver_script: ApproverScript | None = None,
    registry: ActionRegistry = REGISTRY,
    home: Path | None = None,
    max_wait: timedelta = timedelta(days=2),
) -> DrillReport:
    """Run ``playbook`` as a drill on ``incident`` (created in ``store`` if it is not there) and report."""
    incident_id = _ensure_incident(store, incident)
    clock = _Clock()
    queue: deque[tuple[str, str, int]] = deque()

    def send(run_id: str, key: str, attempt: int, idempotent: bool) -> None:
        queue.append((run_id, key, attempt))

    runner = Runner(
        store, PlaybookLibrary([playbook]), registry, home or Path(".citysoc-drill"), send=send, clock=clock
    )
    started = clock()
    t0 = time.perf_counter()
    run = new_run(store, playbook, incident_id, registry, drill=True, now=started)
    store.audit("drill", "drill.started", run.id, {"playbook": playbook.id, "incident": incident_id})
    decided: set[tuple[str, str]] = set()
    plan = runner.drive(run.id)
    while True:
        while queue:
            run_id, key, attempt = queue.popleft()
            runner.execute(run_id, key, attempt)
        plan = runner.drive(run.id)
        if plan.status in FINAL_RUN or queue:
            if plan.status in FINAL_RUN:
                break
            continue
        progressed = _scripted_decisions(store, run.id, approver_script, decided)
        if progressed:
            continue
        if plan.wake_at is None or plan.status is RunStatus.WAITING or plan.wake_at - started > max_wait:
            break  # only approvals left, and nobody scripted to decide them: they stay "awaiting"
        clock.skip_to(plan.wake_at)
    final = store.get_run(run.id)
    if final.status not in FINAL_RUN:
        # a drill never lingers: left running, the workers would time its approvals out and escalate
        runner.finish(final, RunStatus.FAILED, "drill ended with approvals awaiting a decision")
    report = _report(final, playbook, started, (time.perf_counter() - t0) * 1000)
    store.audit("drill", "drill.finished", run.id, {"status": report.status, "playbook": playbook.id})
    return report


class ScenarioError(Exception):
    """A drill scenario file is invalid; the message names the file and the field."""


def load_scenario(path: Path, store: Store) -> tuple[Incident, list[tuple[str, list[str]]]]:
    """Load a lab scenario into ``store``: its incident, events and alert; returns the incident and approvers.

    Format (YAML)::

        incident: {id: INC-DRILL-1, title: ..., severity: high, entities: {source.ip: [10.0.0.9]}, tags: [...]}
        events: [{"@timestamp": "2026-11-21T08:00:00Z", "source.ip": "10.0.0.9", ...}]   # optional
        approvers: [{user: ann, roles: [responder]}]                                      # optional
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from exc
    raw = data.get("incident") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping) or not raw.get("title"):
        raise ScenarioError(f"{path}: 'incident' must be a mapping with at least a title")
    try:
        events = [
            Event(
                id=stable_id("drill", str(path), str(i)),
                timestamp=parse_ts(str(row.get("@timestamp"))),
                fields={k: v for k, v in row.items() if k != "@timestamp"},
            )
            for i, row in enumerate(data.get("events") or [])
        ]
        severity = Severity.parse(str(raw.get("severity", "medium")))
    except (AttributeError, ValueError, EventValidationError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    first = min((e.timestamp for e in events), default=datetime.now(timezone.utc))
    last = max((e.timestamp for e in events), default=first)
    entities = {
        str(k): tuple(str(x) for x in (v if isinstance(v, list) else [v]))
        for k, v in (raw.get("entities") or {}).items()
    }
    incident = Incident(
        id=str(raw.get("id") or "INC-DRILL"),
        title=str(raw["title"]),
        severity=severity,
        status=IncidentStatus.NEW,
        created=last,
        updated=last,
        first_event_time=first,
        last_event_time=last,
        group_key=f"drill:{path.name}",
        entities=entities,
        tags=tuple(str(t) for t in raw.get("tags") or ()),
    )
    store.put_events(events)
    store.create_incident(incident, actor="drill")
    if events:
        alert = Alert(
            f"{incident.id}-A1", "drill", incident.title, severity, last, last, tuple(e.id for e in events),
            {k: v[0] for k, v in entities.items() if v}, incident.tags, source="drill",
        )  # fmt: skip
        store.add_alert(alert)
        store.attach_alert(incident.id, alert, actor="drill")
    approvers = [
        (str(a["user"]), [str(r) for r in a.get("roles", [])])
        for a in data.get("approvers") or []
        if isinstance(a, Mapping) and a.get("user")
    ]
    return store.get_incident(incident.id), approvers


def _ensure_incident(store: Store, incident: Incident | str | None) -> str | None:
    if incident is None:
        return None
    if isinstance(incident, str):
        store.get_incident(incident)  # NotFound is the caller's error: the drill needs a real incident
        return incident
    try:
        store.get_incident(incident.id)
    except NotFound:
        store.create_incident(incident, actor="drill")
    return incident.id


def _scripted_decisions(
    store: Store, run_id: str, script: ApproverScript | None, decided: set[tuple[str, str]]
) -> bool:
    if script is None:
        return False
    progressed = False
    for pending in pending_approvals(store, ["admin"]):
        if pending.run_id != run_id or (run_id, pending.step_ref) in decided:
            continue
        decided.add((run_id, pending.step_ref))
        decisions = script.get(pending.step_ref, ()) if isinstance(script, Mapping) else script(pending)
        for d in decisions:
            try:
                if decide(store, run_id, pending.step_ref, d.user, d.roles, d.approve, d.reason) is None:
                    progressed = True
                    break
            except ApprovalError as exc:
                # recorded in the report as a refused decision; the drill shows the script was wrong
                store.audit(d.user, "drill.decision_refused", f"{run_id}/{pending.step_ref}", {"error": str(exc)})
    return progressed


def _report(run: Any, playbook: Playbook, started: datetime, duration_ms: float) -> DrillReport:
    steps: list[StepReport] = []
    approvals: list[ApprovalReport] = []
    for rec in run.steps:
        ref, _ = split_key(rec.ref)
        step = playbook.step(ref)
        duration = (rec.finished - rec.started).total_seconds() * 1000 if rec.started and rec.finished else None
        steps.append(
            StepReport(
                key=rec.ref,
                kind=step.kind,
                action=step.action,
                status="skipped" if rec.status is StepStatus.PENDING and rec.attempt == 0 else rec.status.value,
                attempts=rec.attempt,
                duration_ms=None if duration is None else round(duration, 3),
                inputs=dict(rec.inputs),
                would_have=rec.output,
                error=rec.error,
            )
        )
        if step.kind == "approval" and rec.attempt:
            out = rec.output if isinstance(rec.output, Mapping) else {}
            status = (
                "approved"
                if out.get("approved")
                else "rejected"
                if out.get("rejected")
                else "timed out"
                if out.get("timed_out")
                else "awaiting"
            )
            approvals.append(
                ApprovalReport(
                    ref,
                    status,
                    tuple(rec.inputs.get("roles", ())),
                    int(rec.inputs.get("quorum", 1)),
                    tuple(out.get("decisions", ())),
                )
            )
    status = run.status.value if run.status in FINAL_RUN else "awaiting approval"
    return DrillReport(
        playbook=playbook.id,
        playbook_version=run.playbook_version,
        run_id=run.id,
        incident_id=run.incident_id,
        status=status,
        error=run.error,
        started=started,
        duration_ms=duration_ms,
        steps=tuple(steps),
        approvals=tuple(approvals),
    )
