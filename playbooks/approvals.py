"""Human approval of playbook steps: who may decide, quorum, deadlines, and the record of each decision.

An approval step waits (its step record is ``RUNNING``) until ``quorum``
distinct people holding one of its roles approve, anyone entitled rejects, or
its deadline passes (then its ``on_timeout`` escalation branch runs).  The
step's required roles, quorum and deadline are copied into the step record
when it starts, so deciding needs only the store -- not the playbook files.
Each decision (who, which role, when, approve or reject, why) is appended to
the step record with a compare-and-set write, so two approvers deciding at the
same moment are both counted, and to the hash-chained audit log.

The console and API call :func:`pending_approvals` and :func:`decide`; after a
decision that settles the step, the run continues through a
:class:`RunResumer` (the dispatcher); without one, the workers' sweeper picks
the change up within about a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from store.base import Store
from store.errors import NotFound
from store.models import StepRecord, StepStatus

ADMIN = "admin"
APPROVAL_ACTION = "approval"
_RACE_RETRIES = 20


class ApprovalError(Exception):
    """A decision was refused; the message says why (missing role, second vote, already decided ...)."""


class RunResumer(Protocol):
    """Continues a run after its approval step was settled (implemented by the playbook dispatcher)."""

    def resume(self, run_id: str) -> None: ...


@dataclass(frozen=True)
class Decision:
    user: str
    roles: tuple[str, ...]
    approve: bool
    reason: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "roles": list(self.roles),
            "approve": self.approve,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            str(data.get("user", "")),
            tuple(data.get("roles", ())),
            bool(data.get("approve")),
            str(data.get("reason", "")),
            datetime.fromisoformat(str(data.get("at"))),
        )


@dataclass(frozen=True)
class PendingApproval:
    run_id: str
    step_ref: str
    playbook: str
    incident_id: str | None
    required_roles: tuple[str, ...]
    quorum: int
    approvals: tuple[Decision, ...]
    deadline: datetime
    description: str
    impact: str

    @property
    def remaining(self) -> int:
        return max(0, self.quorum - len({d.user for d in self.approvals if d.approve}))


def _pending(run_id: str, rec: StepRecord) -> PendingApproval:
    spec = rec.inputs
    made = rec.output.get("decisions", []) if isinstance(rec.output, Mapping) else []
    return PendingApproval(
        run_id=run_id,
        step_ref=rec.ref,
        playbook=str(spec.get("playbook", "")),
        incident_id=spec.get("incident_id"),
        required_roles=tuple(spec.get("roles", ())),
        quorum=int(spec.get("quorum", 1)),
        approvals=tuple(Decision.from_dict(d) for d in made),
        deadline=datetime.fromisoformat(str(spec["deadline"])),
        description=str(spec.get("description", "")),
        impact=str(spec.get("impact", "")),
    )


def _waiting(rec: StepRecord) -> bool:
    return rec.action == APPROVAL_ACTION and rec.status is StepStatus.RUNNING and "deadline" in rec.inputs


def _entitled(required: Iterable[str], roles: Iterable[str]) -> tuple[str, ...]:
    have = set(roles)
    if ADMIN in have:
        return tuple(sorted(have & set(required))) or (ADMIN,)
    return tuple(sorted(have & set(required)))


def pending_approvals(store: Store, roles: Iterable[str]) -> list[PendingApproval]:
    """Approval steps now waiting that someone with ``roles`` may decide (admin: all), oldest deadline first."""
    roles = tuple(roles)
    out: list[PendingApproval] = []
    for run_id in store.active_runs():
        try:
            run = store.get_run(run_id)
        except NotFound:
            continue  # finished and removed meanwhile
        for rec in run.steps:
            if _waiting(rec) and _entitled(rec.inputs.get("roles", ()), roles):
                out.append(_pending(run_id, rec))
    return sorted(out, key=lambda p: (p.deadline, p.run_id, p.step_ref))


def decide(
    store: Store,
    run_id: str,
    step_ref: str,
    user: str,
    roles: Iterable[str],
    approve: bool,
    reason: str,
    resumer: RunResumer | None = None,
    now: datetime | None = None,
) -> PendingApproval | None:
    """Record one decision; returns the still-pending approval, or None when this decision settled it."""
    roles = tuple(roles)
    reason = " ".join(reason.split())
    if not reason:
        raise ApprovalError("a reason is required for every approval decision")
    if not user:
        raise ApprovalError("the deciding user is required")
    for _ in range(_RACE_RETRIES):
        at = now or datetime.now(timezone.utc)
        try:
            run = store.get_run(run_id)
        except NotFound as exc:
            raise ApprovalError(f"no playbook run {run_id!r}") from exc
        rec = next((r for r in run.steps if r.ref == step_ref), None)
        if rec is None or rec.action != APPROVAL_ACTION:
            raise ApprovalError(f"run {run_id} has no approval step {step_ref!r}")
        if not _waiting(rec):
            state = "not started yet" if rec.status is StepStatus.PENDING else f"already decided ({rec.status.value})"
            raise ApprovalError(f"approval {run_id}/{step_ref} is {state}")
        pending = _pending(run_id, rec)
        if at >= pending.deadline:
            raise ApprovalError(f"approval {run_id}/{step_ref} timed out at {pending.deadline.isoformat()}")
        entitled = _entitled(pending.required_roles, roles)
        if not entitled:
            raise ApprovalError(
                f"{user} lacks a role required to decide {run_id}/{step_ref} "
                f"(needs one of: {', '.join(pending.required_roles)}; has: {', '.join(roles) or 'none'})"
            )
        if any(d.user == user for d in pending.approvals):
            raise ApprovalError(f"{user} has already decided {run_id}/{step_ref}; a quorum needs distinct people")
        decision = Decision(user, entitled, approve, reason, at)
        made = [*(d.as_dict() for d in pending.approvals), decision.as_dict()]
        approvers = {d["user"] for d in made if d["approve"]}
        output: dict[str, Any] = {"decisions": made}
        if not approve:
            output["rejected"] = True
            new = replace(
                rec, status=StepStatus.FAILED, finished=at, output=output, error=f"rejected: {user}: {reason}"
            )
        elif len(approvers) >= pending.quorum:
            output["approved"] = True
            new = replace(rec, status=StepStatus.SUCCEEDED, finished=at, output=output, error=None)
        else:
            new = replace(rec, output=output)
        if not store.swap_step(rec, new):
            continue  # another approver decided at the same moment: read again and re-check
        store.audit(
            user,
            "approval.decided",
            f"{run_id}/{step_ref}",
            {**decision.as_dict(), "quorum": pending.quorum, "approvals": len(approvers), "status": new.status.value},
        )
        if new.status is StepStatus.RUNNING:
            return _pending(run_id, new)
        if resumer is not None:
            resumer.resume(run_id)
        return None
    raise ApprovalError(f"approval {run_id}/{step_ref}: too many concurrent decisions, try again")
