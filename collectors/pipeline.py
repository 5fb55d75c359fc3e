"""The ingest pipeline: parse, stamp provenance, enrich, store, notify.

Collectors hand raw records to :class:`IngestPipeline`.  A record that fails
to parse or validate goes to the store's dead-letter table with its source,
offset and reason; the records around it are stored as usual.  Enrichment
(a higher layer) and stored-event listeners (detections) are injected through
the :class:`Enricher` and :class:`store.StoredEventListener` protocols by the
composition root.
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
from store.event import Event, format_ts

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"


class Enricher(Protocol):
    """Implemented by the enrichment layer: adds fields to an event before it is stored."""

    def enrich(self, event: Event) -> Event: ...


@dataclass
class IngestStats:
    """Counters of one pipeline, per stage."""

    received: int = 0
    parsed: int = 0
    dead_lettered: int = 0
    stored: int = 0
    duplicates: int = 0
    by_source: dict[str, int] = field(default_factory=dict)

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

    def provenance(self, event: Event, record: RawRecord, parser: Parser) -> Event:
        """Stamp who received the record, from where, at which offset, and when."""
        stamp: dict[str, object] = {
            "observer.name": self.name,
            "observer.hostname": self.hostname,
            "agent.type": "citysoc-collector",
            "agent.name": self.name,
            "agent.version": AGENT_VERSION,
            "event.created": format_ts(record.received),
            "event.ingested": format_ts(datetime.now(UTC)),
        }
        if "event.module" not in event.fields:
            stamp["event.module"] = parser.name
        if "event.dataset" not in event.fields:
            stamp["event.dataset"] = parser.dataset
        if "event.kind" not in event.fields:
            stamp["event.kind"] = "event"
        if record.path and "log.file.path" not in event.fields:
            stamp["log.file.path"] = record.path
        if "observer.type" not in event.fields:
            stamp["observer.type"] = record.source.split(":", 1)[0]
        labels = {"labels.source": record.source, "labels.source_offset": record.offset}
        return event.with_fields({**stamp, **labels})  # type: ignore[dict-item]

    def parse(self, record: RawRecord, parser: Parser) -> list[Event]:
        """Parse and stamp one record; a bad one is dead-lettered and yields nothing."""
        try:
            events = parser.parse(record)
            return [self._enrich(self.provenance(e, record, parser)) for e in events]
        except (BadRecord, EventValidationError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except NotMyFormat as exc:
            reason = f"not {parser.name} format: {exc}"
        self.dead_letter(record.source, record.offset, f"[{parser.name}] {reason}", record.data)
        return []

    def dead_letter(self, source: str, offset: str, reason: str, raw: str) -> None:
        """Keep a record that cannot be ingested, with where it came from and why; counted in the stats."""
        self.store.add_dead_letter(source, offset, reason, raw)
        with self._lock:
            self.stats.dead_lettered += 1
        log.warning("dead-lettered %s@%s: %s", source, offset, reason)

    def _enrich(self, event: Event) -> Event:
        for enricher in self.enrichers:
            event = enricher.enrich(event)
        return event

    def ingest(self, records: Iterable[RawRecord], parser: Parser, batch_size: int = 500) -> IngestStats:
        """Parse, store and notify a stream of records, in batches."""
        batch: list[Event] = []
        for record in records:
            with self._lock:
                self.stats.received += 1
                self.stats.by_source[record.source] = self.stats.by_source.get(record.source, 0) + 1
            events = self.parse(record, parser)
            with self._lock:
                self.stats.parsed += len(events)
            batch.extend(events)
            if len(batch) >= batch_size:
                self.flush(batch)
                batch = []
        self.flush(batch)
        return self.stats

    def flush(self, events: Sequence[Event]) -> list[Event]:
        """Store events and hand the new ones to the listeners."""
        if not events:
            return []
        stored = self.store.put_events(events)
        with self._lock:
            self.stats.stored += len(stored)
            self.stats.duplicates += len(events) - len(stored)
        for listener in self.listeners:
            listener.on_events_stored(stored)
        return stored
