"""The store interface every backend implements, and the protocol of its listeners."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from store.event import Event
from store.filters import EventPage, IncidentFilter, IncidentPage, IncidentStats, SourceActivity
from store.models import (
    Alert,
    ApiToken,
    AuditEntry,
    DeadLetter,
    Incident,
    IncidentStatus,
    PlaybookRun,
    RunStatus,
    StepRecord,
    TimelineEntry,
    User,
)
from store.query import Node


class StoredEventListener(Protocol):
    """Implemented by higher layers (detections) that act on newly stored events."""

    def on_events_stored(self, events: Sequence[Event]) -> None: ...


class Store(abc.ABC):
    """Events, alerts, incidents, playbook runs, audit log, dead letters, users.

    Backends are registered by name in :mod:`store.registry`.  All methods are
    safe to call from several processes at once.
    """

    name: ClassVar[str]

    # events -----------------------------------------------------------------
    @abc.abstractmethod
    def put_events(self, events: Sequence[Event]) -> list[Event]:
        """Store events; ids already stored are skipped.  Returns the new ones."""

    def try_put_events(self, events: Sequence[Event]) -> list[Event] | None:
        """:meth:`put_events` unless that would wait for another writer: then None, and nothing is stored.

        For a store whose writers queue on one lock (the embedded store: one SQLite writer at a
        time), so a collector can parse its next batch instead of waiting.  The default stores.
        """
        return self.put_events(events)

    @abc.abstractmethod
    def get_event(self, event_id: str) -> Event: ...

    @abc.abstractmethod
    def get_events(self, event_ids: Sequence[str]) -> list[Event]:
        """Events by id, in timestamp order; unknown ids are left out."""

    @abc.abstractmethod
    def search_events(
        self,
        text: str | None = None,
        filters: Mapping[str, str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Event]:
        """Newest first.  ``text`` is a full-text query; ``filters`` exact field values."""

    @abc.abstractmethod
    def iter_events(self, start: datetime | None = None, end: datetime | None = None) -> Iterator[Event]:
        """All events in timestamp order (for retro-hunts and model training)."""

    @abc.abstractmethod
    def count_events(self) -> int: ...

    @abc.abstractmethod
    def delete_events(self, event_ids: Sequence[str]) -> int:
        """Delete events (and their index entries) by id, for retention; returns how many existed."""

    # dead letters -------------------------------------------------------------
    @abc.abstractmethod
    def add_dead_letter(self, source: str, offset: str, reason: str, raw: str) -> DeadLetter: ...

    @abc.abstractmethod
    def list_dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]: ...

    @abc.abstractmethod
    def count_dead_letters(self) -> int: ...

    # alerts -------------------------------------------------------------------
    @abc.abstractmethod
    def add_alert(self, alert: Alert) -> bool:
        """Store an alert; returns False when its id exists already (dedupe)."""

    @abc.abstractmethod
    def get_alert(self, alert_id: str) -> Alert: ...

    @abc.abstractmethod
    def list_alerts(self, incident_id: str | None = None, limit: int = 1000) -> list[Alert]: ...

    @abc.abstractmethod
    def count_alerts(self) -> int: ...

    @abc.abstractmethod
    def count_alerts_by_rule(self, since: datetime | None = None) -> dict[str, dict[str | None, int]]:
        """Alerts created at or after ``since`` per rule id, split by their incident's verdict (None: no verdict)."""

    # incidents ----------------------------------------------------------------
    @abc.abstractmethod
    def create_incident(self, incident: Incident, actor: str) -> Incident: ...

    @abc.abstractmethod
    def get_incident(self, incident_id: str) -> Incident: ...

    @abc.abstractmethod
    def list_incidents(self, status: IncidentStatus | None = None, limit: int = 100, offset: int = 0) -> list[Incident]:
        """Newest first."""

    @abc.abstractmethod
    def count_incidents(self) -> int: ...

    @abc.abstractmethod
    def find_open_incident(self, group_key: str, since: datetime) -> Incident | None:
        """The newest open incident with this group key whose last event is at or after ``since``."""

    @abc.abstractmethod
    def attach_alert(self, incident_id: str, alert: Alert, actor: str) -> Incident:
        """Link an alert to an incident, append a timeline entry, update the projection."""

    @abc.abstractmethod
    def append_timeline(self, incident_id: str, kind: str, actor: str, data: Mapping[str, Any]) -> TimelineEntry:
        """Append an entry.  Kinds ``status``, ``assign`` and ``verdict`` change the projection."""

    @abc.abstractmethod
    def timeline(self, incident_id: str) -> list[TimelineEntry]: ...

    # playbook runs --------------------------------------------------------------
    @abc.abstractmethod
    def create_run(self, run: PlaybookRun) -> PlaybookRun: ...

    @abc.abstractmethod
    def get_run(self, run_id: str) -> PlaybookRun: ...

    @abc.abstractmethod
    def list_runs(self, incident_id: str | None = None, limit: int = 100) -> list[PlaybookRun]: ...

    @abc.abstractmethod
    def count_runs(self) -> int: ...

    @abc.abstractmethod
    def set_run_status(self, run_id: str, status: RunStatus, error: str | None = None) -> None: ...

    @abc.abstractmethod
    def record_step(self, step: StepRecord) -> None:
        """Insert or replace the record of one step (keyed by run id and ref)."""

    @abc.abstractmethod
    def claim_step(self, run_id: str, ref: str, attempt: int) -> bool:
        """False when the step already completed (a redelivered task must not repeat it)."""

    @abc.abstractmethod
    def swap_step(self, expected: StepRecord | None, new: StepRecord) -> bool:
        """Compare-and-set one step record: write ``new`` only if the stored record of (run id, ref) still
        has ``expected``'s status, attempt, started, finished, output and error (or is absent when
        ``expected`` is None).  Playbook workers race on steps; each transition must happen once."""

    @abc.abstractmethod
    def active_runs(self) -> dict[str, datetime]:
        """Runs not finished yet (pending, running, waiting): id -> when each last changed."""

    # audit ----------------------------------------------------------------------
    @abc.abstractmethod
    def audit(self, actor: str, action: str, obj: str, details: Mapping[str, Any]) -> AuditEntry:
        """Append to the hash-chained audit log."""

    @abc.abstractmethod
    def audit_entries(self, limit: int = 1000, offset: int = 0) -> list[AuditEntry]: ...

    @abc.abstractmethod
    def verify_audit(self) -> int:
        """Check the whole chain; returns the number of entries or raises AuditChainBroken."""

    # users ------------------------------------------------------------------------
    @abc.abstractmethod
    def put_user(self, user: User) -> None: ...

    @abc.abstractmethod
    def get_user(self, username: str) -> User: ...

    @abc.abstractmethod
    def list_users(self) -> list[User]: ...

    # API tokens (console) ------------------------------------------------------------
    @abc.abstractmethod
    def put_api_token(self, token: ApiToken) -> None:
        """Insert or replace a token record (keyed by id)."""

    @abc.abstractmethod
    def get_api_token(self, token_id: str) -> ApiToken: ...

    @abc.abstractmethod
    def list_api_tokens(self, owner: str | None = None) -> list[ApiToken]:
        """Newest first; only ``owner``'s when given."""

    @abc.abstractmethod
    def touch_api_token(self, token_id: str, at: datetime) -> None:
        """Record a use (only ``last_used`` changes, so a concurrent revocation is never undone)."""

    # analyst queries (console) -----------------------------------------------------------
    @abc.abstractmethod
    def query_incidents(self, flt: IncidentFilter, limit: int = 50, offset: int = 0) -> IncidentPage:
        """One page of the incidents matching ``flt`` in its order, and how many match in all."""

    @abc.abstractmethod
    def find_events(
        self,
        query: Node | None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        histogram: bool = False,
    ) -> EventPage:
        """Events matching a parsed query (:mod:`store.query`), newest first.

        With ``histogram`` (and both ``start`` and ``end``) the page carries the counts per
        interval and the total; otherwise its total is -1 (not counted).
        """

    @abc.abstractmethod
    def incident_stats(
        self, start: datetime, end: datetime, interval: timedelta, scope: tuple[str, ...] | None = None
    ) -> IncidentStats:
        """Incidents created and closed per interval with mean MTTD and time to close; per sector and status."""

    @abc.abstractmethod
    def source_activity(self, since: datetime) -> list[SourceActivity]:
        """Per dataset: events since ``since`` and the newest one's time."""

    @abc.abstractmethod
    def move_alerts(self, alert_ids: Sequence[str], source_id: str, target_id: str, actor: str) -> list[str]:
        """Move alerts between incidents (merge, split), rebuild both projections, note it on both timelines.

        Returns the ids moved; alerts not on ``source_id`` are left alone.
        """

    # lifecycle --------------------------------------------------------------------
    def release(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release resources held for the calling thread (called at the end of a web request)."""

    def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
