"""The ingest pipeline: parse, stamp provenance, enrich, store, notify.

Collectors hand raw records to :class:`IngestPipeline`.  A record that fails
to parse or validate goes to the store's dead-letter table with its source,
offset and reason; the records around it are stored as usual.  Enrichment
(a higher layer) and stored-event listeners (detections) are injected through
the :class:`Enricher` and :class:`store.StoredEventListener` protocols by the
composition root.

:meth:`IngestPipeline.ingest` returns only after every batch it was given is
stored and its listeners have run, so a collector that checkpoints its offset
after ``ingest`` returns keeps the at-least-once guarantee.  (Storing on a
writer thread while parsing the next batch was measured and rejected: the
GIL hand-offs per inserted row made it slower than storing inline; two
cores are used by running collectors in two processes, see ``docs/performance.md``.)
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord
from store.base import Store, StoredEventListener
from store.errors import EventValidationError
from store.event import Event, Value, format_ts

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"

#: an event whose @timestamp is this many seconds after the collector received it comes
#: from a device clock that runs ahead (syslog stamps have one-second resolution)
FUTURE_TOLERANCE_SECONDS = 5.0
FUTURE_TAG = "clock_skew_future"

#: per-source counters, in pipeline order
SOURCE_STAGES = ("received", "parsed", "dead_lettered", "stored", "duplicates", "future")


class Enricher(Protocol):
    """Implemented by the enrichment layer: adds fields to an event before it is stored."""

    def enrich(self, event: Event) -> Event: ...


@dataclass
class SourceStats:
    """Counters and clock skew of one source (``labels.source``)."""

    received: int = 0
    parsed: int = 0
    dead_lettered: int = 0
    stored: int = 0
    duplicates: int = 0
    #: events whose @timestamp lies more than FUTURE_TOLERANCE_SECONDS after their receipt
    future: int = 0
    #: @timestamp minus receipt time, seconds: last seen, smallest and largest
    skew_last: float | None = None
    skew_min: float | None = None
    skew_max: float | None = None

    def record_skew(self, skew: float) -> None:
        self.skew_last = skew
        self.skew_min = skew if self.skew_min is None else min(self.skew_min, skew)
        self.skew_max = skew if self.skew_max is None else max(self.skew_max, skew)
        if skew > FUTURE_TOLERANCE_SECONDS:
            self.future += 1

    def counters(self) -> dict[str, int]:
        return {stage: getattr(self, stage) for stage in SOURCE_STAGES}


@dataclass
class IngestStats:
    """Counters of one pipeline, per stage, in total and per source."""

    received: int = 0
    parsed: int = 0
    dead_lettered: int = 0
    stored: int = 0
    duplicates: int = 0
    #: records received per source (kept for callers that read it; :attr:`sources` has every stage)
    by_source: dict[str, int] = field(default_factory=dict)
    sources: dict[str, SourceStats] = field(default_factory=dict)

    def source(self, name: str) -> SourceStats:
        stats = self.sources.get(name)
        if stats is None:
            stats = self.sources[name] = SourceStats()
        return stats

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "parsed": self.parsed,
            "dead_lettered": self.dead_lettered,
            "stored": self.stored,
            "duplicates": self.duplicates,
        }


class IngestPipeline:
    """Thread-safe: transports on several threads may call :meth:`ingest` at once."""

    def __init__(
        self,
        store: Store,
        enrichers: Sequence[Enricher] = (),
        listeners: Sequence[StoredEventListener] = (),
        name: str = "citysoc-collector",
    ) -> None:
        self.store = store
        self.enrichers = list(enrichers)
        self.listeners = list(listeners)
        self.name = name
        self.hostname = socket.gethostname()
        self.stats = IngestStats()
        self._lock = threading.Lock()
        #: (parser name, dataset, source, path) -> the validated constant part of the stamp
        self._stamps: dict[tuple[str, str, str, str | None], dict[str, Value]] = {}

    # provenance ---------------------------------------------------------------------
    def _constant_stamp(self, record: RawRecord, parser: Parser) -> dict[str, Value]:
        key = (parser.name, parser.dataset, record.source, record.path)
        stamp = self._stamps.get(key)
        if stamp is None:
            fields: dict[str, Value] = {
                "observer.name": self.name,
                "observer.hostname": self.hostname,
                "observer.type": record.source.split(":", 1)[0],
                "agent.type": "citysoc-collector",
                "agent.name": self.name,
                "agent.version": AGENT_VERSION,
                "event.module": parser.name,
                "event.dataset": parser.dataset,
                "event.kind": "event",
                "labels.source": record.source,
            }
            if record.path:
                fields["log.file.path"] = record.path
            stamp = dict(Event("stamp", record.received, fields).fields)  # validated once, reused per record
            if len(self._stamps) < 10_000:  # sources are configured, but stay bounded anyway
                self._stamps[key] = stamp
        return stamp

    def provenance(self, event: Event, record: RawRecord, parser: Parser, now: datetime | None = None) -> Event:
        """Stamp who received the record, from where, at which offset and when, and the clock skew.

        ``event.skew_seconds`` is ``@timestamp`` minus the receipt time (``event.created``):
        positive means the device clock is ahead; beyond :data:`FUTURE_TOLERANCE_SECONDS`
        the event is tagged :data:`FUTURE_TAG`.
        """
        stamp = self._constant_stamp(record, parser)
        fixed = ("observer.name", "observer.hostname", "agent.type", "agent.name", "agent.version", "labels.source")
        values: dict[str, Value | None] = {name: stamp[name] for name in fixed}
        for name in ("event.module", "event.dataset", "event.kind", "log.file.path", "observer.type"):
            if name in stamp and name not in event.fields:
                values[name] = stamp[name]
        skew = (event.timestamp - record.received).total_seconds()
        values["event.created"] = format_ts(record.received)
        values["event.ingested"] = format_ts(now or datetime.now(UTC))
        values["event.skew_seconds"] = skew
        values["labels.source_offset"] = record.offset
        if skew > FUTURE_TOLERANCE_SECONDS:
            tags = event.fields.get("tags", ())
            if FUTURE_TAG not in tags:  # type: ignore[operator]
                values["tags"] = (*tags, FUTURE_TAG)  # type: ignore[misc]
        return event.with_fields(values)

    # parsing ------------------------------------------------------------------------
    def parse(self, record: RawRecord, parser: Parser, now: datetime | None = None) -> list[Event]:
        """Parse and stamp one record; a bad one is dead-lettered and yields nothing."""
        try:
            events = parser.parse(record)
            return [self._enrich(self.provenance(e, record, parser, now)) for e in events]
        except (BadRecord, EventValidationError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except NotMyFormat as exc:
            reason = f"not {parser.name} format: {exc}"
        self.dead_letter(record.source, record.offset, f"[{parser.name}] {reason}", record.data)
        return []

    def dead_letter(self, source: str, offset: str, reason: str, raw: str) -> None:
        """Keep a record that cannot be ingested, with where it came from and why; counted in the stats.

        The store keys dead letters by source, offset and content, so a resent batch adds none twice.
        """
        self.store.add_dead_letter(source, offset, reason, raw)
        with self._lock:
            self.stats.dead_lettered += 1
            self.stats.source(source).dead_lettered += 1
        log.warning("dead-lettered %s@%s: %s", source, offset, reason)

    def _enrich(self, event: Event) -> Event:
        for enricher in self.enrichers:
            event = enricher.enrich(event)
        return event

    # ingest -------------------------------------------------------------------------
    def ingest(self, records: Iterable[RawRecord], parser: Parser, batch_size: int = 500) -> IngestStats:
        """Parse, store and notify a stream of records, in batches; returns once all of it is stored."""
        batch: list[Event] = []
        now = datetime.now(UTC)
        for record in records:
            with self._lock:
                self.stats.received += 1
                self.stats.by_source[record.source] = self.stats.by_source.get(record.source, 0) + 1
                self.stats.source(record.source).received += 1
            events = self.parse(record, parser, now)
            with self._lock:
                source = self.stats.source(record.source)
                source.parsed += len(events)
                self.stats.parsed += len(events)
                for event in events:
                    skew = event.fields.get("event.skew_seconds")
                    if isinstance(skew, float):
                        source.record_skew(skew)
            batch.extend(events)
            if len(batch) >= batch_size:
                self.flush(batch)
                batch = []
                now = datetime.now(UTC)
        self.flush(batch)
        return self.stats

    def flush(self, events: Sequence[Event]) -> list[Event]:
        """Store events now (on the calling thread) and hand the new ones to the listeners."""
        if not events:
            return []
        stored = self.store.put_events(events)
        self._notify(events, stored)
        return stored

    def _notify(self, events: Sequence[Event], stored: list[Event]) -> None:
        new = {event.id for event in stored}
        with self._lock:
            self.stats.stored += len(stored)
            self.stats.duplicates += len(events) - len(stored)
            for event in events:
                source = self.stats.source(str(event.fields.get("labels.source", "")))
                if event.id in new:
                    new.discard(event.id)  # a repeated id in one batch is stored once
                    source.stored += 1
                else:
                    source.duplicates += 1
        for listener in self.listeners:
            listener.on_events_stored(stored)
