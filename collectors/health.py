"""Source health: each source declares how often it should report; a silent one raises an alert.

A :class:`SourceHealth` watches what the pipeline stores (it implements the
store's ``StoredEventListener`` protocol, keyed by ``labels.source``) and, on
:meth:`SourceHealth.check`, compares each declared source's last event with its
expected interval:

* ``ok`` -- reported within the interval;
* ``late`` -- later than the interval, but within ``grace`` intervals;
* ``silent`` -- nothing for ``grace`` intervals (or never, ``grace`` intervals
  after monitoring began): reported once per silence to the
  :class:`SilenceListener`\\ s (the detections layer turns it into a
  "source silent" alert), and re-armed when the source reports again.

Collectors cannot import detections, hence the protocol; ``console/runtime.py``
(or ``citysoc collect``) wires ``detections.source_health.SourceSilenceAlerter``.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from collectors.base import CollectorError
from store.event import Event

STATES = ("ok", "late", "silent")


@dataclass(frozen=True)
class SourceExpectation:
    """A source (shell pattern on ``labels.source``) and how often it must report."""

    source: str
    interval: timedelta
    grace: float = 3.0
    area: str = ""
    domain: str = ""

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0) or self.grace < 1:
            raise CollectorError(f"source {self.source!r}: interval must be positive and grace at least 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> SourceExpectation:
        try:
            return cls(str(data["source"]), timedelta(seconds=float(data["interval_seconds"])),
                       float(data.get("grace", 3.0)), str(data.get("area", "")), str(data.get("domain", "")))
        except KeyError as exc:
            raise CollectorError(f"{where}: missing key {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise CollectorError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class SourceStatus:
    expectation: SourceExpectation
    state: str
    last_seen: datetime | None
    quiet_for: timedelta


class SilenceListener(Protocol):
    """Implemented by the detections layer: raise the "source silent" alert."""

    def on_source_silent(self, status: SourceStatus) -> None: ...


class SourceHealth:
    """Last-seen times per source and the silent-source check; thread-safe."""

    def __init__(
        self,
        expectations: Sequence[SourceExpectation],
        listeners: Sequence[SilenceListener] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.expectations = list(expectations)
        self.listeners = list(listeners)
        self.clock = clock
        self.started = clock()
        self._last: dict[str, datetime] = {}
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def observe(self, source: str, at: datetime | None = None) -> None:
        at = at or self.clock()
        with self._lock:
            if source not in self._last or self._last[source] < at:
                self._last[source] = at

    def on_events_stored(self, events: Sequence[Event]) -> None:
        now = self.clock()
        for event in events:
            source = event.fields.get("labels.source")
            if isinstance(source, str):
                self.observe(source, now)

    def status(self, now: datetime | None = None) -> list[SourceStatus]:
        now = now or self.clock()
        out = []
        with self._lock:
            last_seen = dict(self._last)
        for exp in self.expectations:
            seen = [t for s, t in last_seen.items() if fnmatch.fnmatchcase(s, exp.source)]
            last = max(seen) if seen else None
            quiet = now - (last or self.started)
            if quiet <= exp.interval:
                state = "ok"
            elif quiet <= exp.interval * exp.grace:
                state = "late"
            else:
                state = "silent"
            out.append(SourceStatus(exp, state, last, quiet))
        return out

    def check(self, now: datetime | None = None) -> list[SourceStatus]:
        """Statuses of all sources; newly silent ones are reported to the listeners once."""
        statuses = self.status(now)
        for status in statuses:
            key = status.expectation.source
            if status.state != "silent":
                self._reported.discard(key)
                continue
            if key in self._reported:
                continue
            self._reported.add(key)
            for listener in self.listeners:
                listener.on_source_silent(status)
        return statuses
