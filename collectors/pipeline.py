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
GIL hand-offs per inserted row made it slower than storing inline.)  :meth:`IngestPipeline.submit`
parsing inline does better without a thread: when another process holds the embedded store's
write lock it keeps the parsed batch and parses the next one, storing the kept ones, oldest
first and together in one write, once the lock is free (:meth:`store.base.Store.try_put_events`).

With ``parse_workers=N`` the CPU-heavy part (parse, validate, stamp, serialise and, for
the embedded store, the index entries) runs in N worker processes (:mod:`collectors.parse_workers`) and this process
enriches, stores and notifies, so a second core does the parsing while the
one SQLite writer writes.  :meth:`IngestPipeline.submit` queues a batch and
returns; up to ``max_in_flight`` batches per thread are parsed ahead while the
oldest is stored, and each batch's ``then`` callback (a collector's checkpoint)
runs only after that batch and every batch before it are stored.
:meth:`IngestPipeline.drain` waits for the calling thread's batches.
"""

from __future__ import annotations

import collections
import gc
import itertools
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from collectors.base import BadRecord, CollectorError, NotMyFormat, Parser, RawRecord
from collectors.lines import LineBlock, block_records
from collectors.parse_workers import Chunk, Delivery, ParsePool, ParseWorkerError, RecordInfo, Row, to_row
from collectors.provenance import AGENT_VERSION, FUTURE_TAG, FUTURE_TOLERANCE_SECONDS, Provenance
from store.base import Store, StoredEventListener
from store.errors import EventValidationError
from store.event import Event
from store.sqlite import SQLiteStore

log = logging.getLogger(__name__)

__all__ = ["AGENT_VERSION", "FUTURE_TAG", "FUTURE_TOLERANCE_SECONDS", "Enricher", "IngestPipeline", "IngestStats",
           "ParseWorkerError", "SourceStats"]

#: per-source counters, in pipeline order
SOURCE_STAGES = ("received", "parsed", "dead_lettered", "stored", "duplicates", "future")


#: batches a thread parsing inline keeps parsed while another writer has the store (``max_in_flight``'s default)
INLINE_IN_FLIGHT = 6
#: batches kept while another writer had the store go into one write, up to this many events: each write
#: transaction of a process sharing the embedded store starts by reading again the pages the other one changed,
#: so fewer, larger transactions cost less (two collector processes: 11-25 % more events/s than one write per batch)
MERGE_EVENTS = 3_000
#: a submitted batch whose records give more events than this (a SCADA row gives one per tag) is stored in parts
#: of at least this many events, or as many as the batch has records
PART_EVENTS = 500

#: the cyclic garbage collector's first threshold in a collector process (Python's default: 700 allocations)
INGEST_GC_THRESHOLD = 50_000


def settle_heap() -> None:
    """Tune the garbage collector for a long-running collector process, once it is set up.

    What start-up made (modules, parsers, rules, caches) is frozen out of the cyclic
    collector's sight (:func:`gc.freeze`), and it runs every :data:`INGEST_GC_THRESHOLD`
    allocations instead of 700: a batch of events is tens of thousands of short-lived dicts
    and tuples without cycles, which the default scanned dozens of times over per batch
    (~2 % of an inline collector's instructions).  Reference counting still frees them at once.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(INGEST_GC_THRESHOLD, middle, old)


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

    def record_skews(self, skews: list[float]) -> None:
        """:meth:`record_skew` for each of ``skews``, in order (one call per batch)."""
        low, high = min(skews), max(skews)
        self.skew_last = skews[-1]
        self.skew_min = low if self.skew_min is None else min(self.skew_min, low)
        self.skew_max = high if self.skew_max is None else max(self.skew_max, high)
        if high > FUTURE_TOLERANCE_SECONDS:
            self.future += sum(1 for skew in skews if skew > FUTURE_TOLERANCE_SECONDS)

    def merge_skews(self, last: float | None, low: float | None, high: float | None, future: int) -> None:
        """Add a summary of later skews (the last, smallest and largest, and how many were in the future)."""
        if last is None or low is None or high is None:
            return
        self.skew_last = last
        self.skew_min = low if self.skew_min is None else min(self.skew_min, low)
        self.skew_max = high if self.skew_max is None else max(self.skew_max, high)
        self.future += future

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


@dataclass
class _Pending:
    """A batch handed over and not yet stored: to the parse workers, or parsed inline and waiting for the store."""

    parser: Parser
    pool: ParsePool | None
    #: (worker, ticket) per part of the batch sent to a worker
    parts: list[tuple[int, int]]
    then: Callable[[], None] | None
    #: parsed inline: the events, and their count per source when known (:meth:`IngestPipeline._count_batch`)
    events: list[Event] | None = None
    sources: dict[str, int] | None = None


def _parsed_run(queue: collections.deque[_Pending]) -> int:
    """How many batches, from the oldest on, are parsed inline and go into one write: at least one, then as long
    as the events stay within :data:`MERGE_EVENTS`."""
    count = size = 0
    for pending in queue:
        if pending.events is None or (count and size + len(pending.events) > MERGE_EVENTS):
            break
        count += 1
        size += len(pending.events)
    return count


def _joined(queue: collections.deque[_Pending], count: int) -> tuple[list[Event], dict[str, int] | None]:
    """The events of the oldest ``count`` (parsed) batches, in order, and their count per source (None if a
    batch's is not known)."""
    first = queue[0].events
    assert first is not None  # _parsed_run counted only parsed batches
    if count == 1:
        return first, queue[0].sources
    events: list[Event] = []
    sources: dict[str, int] | None = {}
    for pending in itertools.islice(queue, count):
        assert pending.events is not None
        events.extend(pending.events)
        if pending.sources is None:
            sources = None
        elif sources is not None:
            for name, n in pending.sources.items():
                sources[name] = sources.get(name, 0) + n
    return events, sources


class IngestPipeline:
    """Thread-safe: transports on several threads may call :meth:`ingest` at once.

    ``parse_workers`` > 0 parses in that many worker processes (started at the first batch or by
    :meth:`start`, stopped by :meth:`close`); ``max_in_flight`` bounds the batches each thread has
    handed to them, or parsed inline while another writer had the store, and not yet stored
    (back-pressure: :meth:`submit` stores the oldest first, waiting if need be).
    ``index_in_workers`` has the workers also compute the embedded store's index entries (default:
    with two workers or more); stored events and search results are the same either way.
    """

    def __init__(
        self,
        store: Store,
        enrichers: Sequence[Enricher] = (),
        listeners: Sequence[StoredEventListener] = (),
        name: str = "citysoc-collector",
        parse_workers: int = 0,
        max_in_flight: int | None = None,
        index_in_workers: bool | None = None,
    ) -> None:
        if parse_workers < 0:
            raise CollectorError(f"parse_workers must be 0 (parse inline) or more, not {parse_workers}")
        self.store = store
        self.enrichers = list(enrichers)
        self.listeners = list(listeners)
        self.name = name
        self.hostname = socket.gethostname()
        self.stats = IngestStats()
        self.parse_workers = parse_workers
        if max_in_flight is None:  # inline: parse ahead while another process has the embedded store's write lock
            max_in_flight = 2 * parse_workers + 1 if parse_workers else INLINE_IN_FLIGHT
        self.max_in_flight = max(1, max_in_flight)
        # The embedded store's index entries (store.sqlite_events.index_entry) cost the writer ~7 µs per event
        # less when the workers compute them, and the workers ~11-20 µs more (the pass, and sending the entry).
        # That pays when the one writer is the limit (two or more workers); with one worker on two cores the
        # worker is, and it made the pipeline slower (docs/performance.md), so by default only from two workers.
        self.index_in_workers = parse_workers >= 2 if index_in_workers is None else index_in_workers
        self._lock = threading.Lock()
        self._provenance = Provenance(name, self.hostname)
        self._pool: ParsePool | None = None
        self._pool_lock = threading.Lock()
        self._local = threading.local()

    # provenance ---------------------------------------------------------------------
    def provenance(self, event: Event, record: RawRecord, parser: Parser, now: datetime | None = None) -> Event:
        """Stamp who received the record, from where, at which offset and when, and the clock skew.

        ``event.skew_seconds`` is ``@timestamp`` minus the receipt time (``event.created``):
        positive means the device clock is ahead; beyond :data:`FUTURE_TOLERANCE_SECONDS`
        the event is tagged :data:`FUTURE_TAG`.
        """
        return self._provenance.stamp(event, record, parser, now)

    # parsing ------------------------------------------------------------------------
    def parse(self, record: RawRecord, parser: Parser, now: datetime | None = None) -> list[Event]:
        """Parse and stamp one record; a bad one is dead-lettered and yields nothing."""
        try:
            events = parser.parse(record)
            stamp = self._provenance.stamp  # what self.provenance does, without its call per event
            if not self.enrichers:
                return [stamp(e, record, parser, now) for e in events]
            return [self._enrich(stamp(e, record, parser, now)) for e in events]
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
        if self.parse_workers:
            records = iter(records)
            while chunk := list(itertools.islice(records, batch_size)):
                self.submit(chunk, parser)
            self.drain()
            return self.stats
        for events, sources in self._parsed_batches(records, parser, batch_size):
            self._flush(events, sources)
        return self.stats

    def _parsed_batches(
        self, records: Iterable[RawRecord], parser: Parser, batch_size: int
    ) -> Iterator[tuple[list[Event], dict[str, int] | None]]:
        """Parse and stamp records inline: batches of ``batch_size`` events or more (a record may give
        several), the last one smaller, each with its events per source (:meth:`_count_batch`)."""
        batch: list[Event] = []
        now = datetime.now(UTC)
        # counted per batch and source (one lock round per batch, not two per record), before each is handed on
        received: dict[str, int] = {}
        parsed: dict[str, list[Event]] = {}
        try:
            for record in records:
                source = record.source
                received[source] = received.get(source, 0) + 1
                events = self.parse(record, parser, now)
                if events:
                    group = parsed.get(source)
                    if group is None:
                        group = parsed[source] = []
                    group.extend(events)
                    batch.extend(events)
                if len(batch) >= batch_size:
                    sources = self._count_batch(received, parsed)
                    received, parsed = {}, {}
                    yield batch, sources
                    batch = []
                    now = datetime.now(UTC)
        except BaseException:
            self._count_batch(received, parsed)  # what was read and parsed before the failure, as counted before
            raise
        yield batch, self._count_batch(received, parsed)

    def _count_batch(self, received: dict[str, int], parsed: dict[str, list[Event]]) -> dict[str, int] | None:
        """Count records received and events parsed per source; returns the events per ``labels.source``
        when it is known without looking (no enricher could have changed it), for :meth:`_notify`."""
        with self._lock:
            for name, count in received.items():
                self.stats.received += count
                self.stats.by_source[name] = self.stats.by_source.get(name, 0) + count
                self.stats.source(name).received += count
            for name, events in parsed.items():
                source = self.stats.source(name)
                source.parsed += len(events)
                self.stats.parsed += len(events)
                skews = [skew for e in events if type(skew := e.fields.get("event.skew_seconds")) is float]
                if skews:
                    source.record_skews(skews)
        return None if self.enrichers else {name: len(events) for name, events in parsed.items()}

    # parse workers --------------------------------------------------------------------
    def start(self) -> None:
        """Start the parse workers now rather than at the first batch (no-op when parsing inline)."""
        if self.parse_workers:
            self._workers()

    def close(self) -> None:
        """Stop the parse workers; batches not yet stored are dropped (their collectors did not checkpoint)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def parse_worker_pids(self) -> list[int]:
        """Process ids of the running parse workers (none before the first batch or :meth:`start`)."""
        with self._pool_lock:
            return self._pool.pids if self._pool is not None else []

    def _workers(self) -> ParsePool:
        with self._pool_lock:
            pool = self._pool
            if pool is not None and pool.broken:
                log.error("parse workers: %s; starting new ones", pool.broken)
                pool.close()
                pool = None
            if pool is None:
                index = self.index_in_workers and isinstance(self.store, SQLiteStore)
                # with enrichers the workers also say which record each event came from (a record the
                # enrichers reject is dead-lettered whole, with its raw data).  When the workers index and
                # there are neither enrichers nor listeners, storing reads two of the events' fields: the
                # JSON stands for the rest (read back only if something asks, e.g. a listener added later)
                fields = bool(self.enrichers or self.listeners or not index)
                delivery = Delivery(index=index, records=bool(self.enrichers), fields=fields)
                pool = self._pool = ParsePool(self.parse_workers, self.name, self.hostname, delivery=delivery)
            return pool

    def _pending(self) -> collections.deque[_Pending]:
        pending: collections.deque[_Pending] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = collections.deque()
        return pending

    def submit(self, records: Sequence[RawRecord], parser: Parser, then: Callable[[], None] | None = None) -> None:
        """Hand one batch over; ``then`` runs once it and every batch this thread submitted before are stored.

        Inline (no parse workers) the batch is parsed here and stored at once if the store takes it
        without waiting (:meth:`store.base.Store.try_put_events`); while another process holds the
        embedded store's write lock it waits, and this thread parses its next batch instead of
        sleeping.  With workers it is parsed in a worker while earlier batches are stored.  Either
        way, when this thread has more than ``max_in_flight`` batches out, the oldest are stored
        (and their ``then`` run) first, waiting if need be; :meth:`drain` stores them all.  If
        storing a batch fails, the batches after it are dropped without their ``then`` (so a
        collector never checkpoints past what was stored) and the error is raised.
        """
        if not self.parse_workers:
            # a record may give many events (a SCADA row: one per tag): stored in parts of PART_EVENTS events
            # or more, and ``then`` goes with the last part, so it runs once every part is stored
            last: tuple[list[Event], dict[str, int] | None] | None = None
            for part in self._parsed_batches(records, parser, max(PART_EVENTS, len(records))):
                if last is not None:
                    if not part[0]:
                        continue  # an empty last part (counted already): nothing to store
                    self._enqueue(_Pending(parser, None, [], None, *last))
                last = part
            if last is not None:
                self._enqueue(_Pending(parser, None, [], then, *last))
            return
        batch = list(records)
        parts: list[tuple[int, int]] = []
        pool: ParsePool | None = None
        if batch:
            pool = self._workers()
            now = datetime.now(UTC)
            groups: dict[int, list[Row]] = {}
            received: dict[str, int] = {}
            for record in batch:
                received[record.source] = received.get(record.source, 0) + 1
                rows = groups.get(worker := pool.worker_for(parser, record.source))
                if rows is None:
                    rows = groups[worker] = []
                rows.append(to_row(record))
            self._count_received_batch(received)
            try:
                for worker, rows in groups.items():
                    parts.append((worker, pool.submit(worker, parser, rows, now)))
            except BaseException:
                self.discard()
                raise
        self._enqueue(_Pending(parser, pool, parts, then))

    def submit_lines(
        self, block: LineBlock, records: int, parser: Parser, then: Callable[[], None] | None = None
    ) -> None:
        """:meth:`submit` for a file's batch of complete lines holding ``records`` records (non-blank lines).

        With parse workers the block goes to the worker as it is and the worker makes the records
        (:func:`collectors.lines.block_records`), so this process does nothing per line; inline the
        records are made here by the same function.
        """
        if not self.parse_workers:
            self.submit(list(block_records(block)), parser, then)
            return
        parts: list[tuple[int, int]] = []
        pool: ParsePool | None = None
        if records:
            pool = self._workers()
            self._count_received_batch({block.source: records})
            worker = pool.worker_for(parser, block.source)
            try:
                parts.append((worker, pool.submit(worker, parser, block, datetime.now(UTC))))
            except BaseException:
                self.discard()
                raise
        self._enqueue(_Pending(parser, pool, parts, then))

    def _count_received_batch(self, received: dict[str, int]) -> None:
        with self._lock:  # counted per batch: one lock round per batch, not per record
            for source, count in received.items():
                self.stats.received += count
                self.stats.by_source[source] = self.stats.by_source.get(source, 0) + count
                self.stats.source(source).received += count

    def _enqueue(self, pending: _Pending) -> None:
        queue = self._pending()
        queue.append(pending)
        if pending.events is not None:
            self._store_parsed(queue)
        while len(queue) > self.max_in_flight:
            self._complete_oldest(queue)

    def _store_parsed(self, queue: collections.deque[_Pending]) -> None:
        """Store the oldest batches parsed inline, in order, as long as the store takes them without waiting."""
        while queue and queue[0].events is not None:
            if not self._write_parsed(queue, wait=False):
                return  # another writer has the store: parse the next batch meanwhile

    def _write_parsed(self, queue: collections.deque[_Pending], wait: bool) -> bool:
        """Store the oldest batches parsed inline in one write (:func:`_parsed_run`), then run their ``then`` in order.

        Without ``wait``, False (and nothing done) while another writer has the store.  If the
        write fails, every batch this thread has out is dropped unacknowledged and the error raised.
        """
        count = _parsed_run(queue)
        events, sources = _joined(queue, count)
        try:
            stored = self.store.put_events(events) if wait else self.store.try_put_events(events)
            if stored is None:
                return False
            thens = [queue.popleft().then for _ in range(count)]
            self._notify(events, stored, sources)
            for then in thens:
                if then is not None:
                    then()
        except BaseException:
            queue.clear()  # as _complete_oldest: nothing after a failed batch is stored or checkpointed
            raise
        return True

    def drain(self) -> None:
        """Store every batch this thread submitted, in order, running their ``then``."""
        queue = self._pending()
        while queue:
            self._complete_oldest(queue)

    def discard(self) -> None:
        """Forget this thread's batches not yet stored (their ``then`` never runs; their records are re-read)."""
        self._pending().clear()

    def _complete_oldest(self, queue: collections.deque[_Pending]) -> None:
        if queue[0].events is not None:  # parsed inline: stored (waiting for the store) with the parsed ones after it
            self._write_parsed(queue, wait=True)
            return
        pending = queue.popleft()
        try:
            self._complete(pending)
        except BaseException:
            queue.clear()  # later batches must not be stored and checkpointed past the failed one
            raise

    def _complete(self, pending: _Pending) -> None:
        if pending.events is not None:
            self._flush(pending.events, pending.sources)
        elif pending.pool is not None:
            pool = pending.pool
            for worker, ticket in pending.parts:
                # stored chunk by chunk as the worker sends them (a batch of SCADA rows is thousands of events):
                # the next chunk is parsed meanwhile; ``then`` still runs only once the whole batch is stored
                for chunk in pool.chunks(worker, ticket):
                    self._store_chunk(chunk, pending.parser)
        if pending.then is not None:
            pending.then()

    def _store_chunk(self, chunk: Chunk, parser: Parser) -> None:
        """Dead-letter, (enrich,) count and store one chunk of a worker's outcome."""
        for source, offset, reason, data in chunk.dead:
            self.dead_letter(source, offset, reason, data)
        if chunk.records is not None and self.enrichers:
            self._store_enriched(chunk.events, chunk.records, parser)
            return
        # counted by the worker per source and chunk: nothing to do here per event
        stored: dict[str, int] = {}
        with self._lock:
            for name, parsed, last, low, high, future in chunk.counts:
                counters = self.stats.source(name)
                counters.parsed += parsed
                self.stats.parsed += parsed
                counters.merge_skews(last, low, high, future)
                stored[name] = parsed
        self._flush(chunk.events, stored)

    def _store_enriched(self, events: list[Event], records: list[RecordInfo], parser: Parser) -> None:
        """Enrich the events of each record (a record whose enrichment fails is dead-lettered), count, store."""
        batch: list[Event] = []
        parsed: dict[str, list[Event]] = {}
        done = 0
        for source, offset, data, count in records:
            own = events[done : done + count]
            done += count
            try:
                own = [self._enrich(event) for event in own]
            except (BadRecord, EventValidationError) as exc:  # as IngestPipeline.parse words it
                self.dead_letter(source, offset, f"[{parser.name}] {type(exc).__name__}: {exc}", data)
                continue
            by_source = parsed.get(source)
            if by_source is None:
                by_source = parsed[source] = []
            by_source.extend(own)
            batch.extend(own)
        self._count_batch({}, parsed)  # received: counted when submitted
        self.flush(batch)

    def flush(self, events: Sequence[Event]) -> list[Event]:
        """Store events now (on the calling thread) and hand the new ones to the listeners."""
        if not events:
            return []
        return self._flush(events)

    def _flush(self, events: Sequence[Event], sources: dict[str, int] | None = None) -> list[Event]:
        """:meth:`flush`; ``sources`` (events per ``labels.source``, when the caller knows) spares a pass."""
        if not events:
            return []
        stored = self.store.put_events(events)
        self._notify(events, stored, sources)
        return stored

    def _notify(self, events: Sequence[Event], stored: list[Event], sources: dict[str, int] | None = None) -> None:
        if len(stored) == len(events):  # the usual case, every event new: counted per source, not per event
            counts = sources if sources is not None else collections.Counter(
                [event.fields.get("labels.source", "") for event in events]
            )
            with self._lock:
                self.stats.stored += len(stored)
                for name, count in counts.items():
                    self.stats.source(str(name)).stored += count
            for listener in self.listeners:
                listener.on_events_stored(stored)
            return
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
