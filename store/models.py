"""Immutable records kept by the store besides events.

Alerts, incidents with their append-only timeline, playbook runs and steps,
the audit log, dead letters and console users.  Records are frozen; a change
is a new record written through the store (incidents change only by
appending timeline entries, from which their current state is projected).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Severity(enum.IntEnum):
    """Sigma levels, ordered."""

    INFORMATIONAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError as exc:
            raise ValueError(f"unknown severity {text!r}") from exc

    @property
    def label(self) -> str:
        return self.name.lower()


class IncidentStatus(enum.StrEnum):
    NEW = "new"
    TRIAGE = "triage"
    IN_PROGRESS = "in_progress"
    CONTAINED = "contained"
    CLOSED = "closed"


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Alert:
    """One rule (or model) match on one or more events."""

    id: str
    rule_id: str
    rule_title: str
    severity: Severity
    created: datetime
    event_time: datetime
    event_ids: tuple[str, ...]
    entities: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    source: str = "sigma"
    description: str = ""
    incident_id: str | None = None
    #: the rule's ``incident-group-by`` (entity fields or ``rule``); empty: group by the strongest entity
    group_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimelineEntry:
    """One append-only entry on an incident's timeline."""

    incident_id: str
    seq: int
    at: datetime
    kind: str
    actor: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Incident:
    """Projection of an incident's timeline: its current state."""

    id: str
    title: str
    severity: Severity
    status: IncidentStatus
    created: datetime
    updated: datetime
    first_event_time: datetime
    last_event_time: datetime
    group_key: str
    entities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    alert_count: int = 0
    mttd_seconds: float | None = None
    assignee: str | None = None
    verdict: str | None = None


@dataclass(frozen=True)
class StepRecord:
    run_id: str
    ref: str
    action: str
    status: StepStatus
    attempt: int
    started: datetime | None
    finished: datetime | None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    output: Any = None
    error: str | None = None


@dataclass(frozen=True)
class PlaybookRun:
    id: str
    playbook: str
    playbook_version: str
    incident_id: str | None
    status: RunStatus
    created: datetime
    updated: datetime
    drill: bool = False
    steps: tuple[StepRecord, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    object: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class DeadLetter:
    id: int
    at: datetime
    source: str
    offset: str
    reason: str
    raw: str


@dataclass(frozen=True)
class User:
    """A console user.  ``agencies`` empty = all agencies; ``totp_secret`` is encrypted by the console."""

    username: str
    password_hash: str
    roles: tuple[str, ...]
    must_change_password: bool = False
    created: datetime | None = None
    agencies: tuple[str, ...] = ()
    disabled: bool = False
    mfa_required: bool = False
    mfa_enabled: bool = False
    totp_secret: str = ""
    totp_last_step: int = 0
    failed_logins: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True)
class ApiToken:
    """An API token; only the SHA-256 of its secret is kept.  ``agencies`` empty = the owner's scope."""

    id: str
    name: str
    owner: str
    token_hash: str
    roles: tuple[str, ...]
    agencies: tuple[str, ...]
    created: datetime
    expires: datetime | None = None
    last_used: datetime | None = None
    revoked: datetime | None = None
