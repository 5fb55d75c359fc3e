"""Parse worker processes: parsing, validation, provenance and serialisation on other cores.

An :class:`IngestPipeline` started with ``parse_workers=N`` hands batches of raw records (or,
from a file collector, a block of whole lines: :class:`collectors.lines.LineBlock`, split into
records in the worker) to N worker processes (started with ``spawn``: no inherited locks,
connections or threads).  Each worker runs the parser, builds the validated events, stamps
their provenance, serialises them (:meth:`store.event.Event.to_json`, cached on the event) and,
for the embedded store, computes their index entries (:func:`store.sqlite_events.index_entry`,
likewise cached), and sends back, in order and in chunks of about :data:`CHUNK_EVENTS` events,
the events (marshalled plain values: :meth:`~store.event.Event.to_wire`, or
:meth:`~store.event.Event.to_stored_wire` when the pipeline's process only stores them), the
records to dead-letter with their reasons, and the counters per source (events parsed, clock
skew), so the pipeline's process does no per-record or per-event bookkeeping.  It enriches,
stores, notifies the listeners and only then lets the collector checkpoint, so the
at-least-once guarantee is the one of the inline pipeline.

Records of one source always go to the same worker, in the order they were submitted, so
parsers that keep state per source (a CSV or Zeek TSV header, auditd records joined by
serial) see them as the inline pipeline would.  A parser is sent to a worker once: pickled
(with its configuration) when it can be, otherwise by its registered name.

Failures: a worker that dies (killed, out of memory) is broken infrastructure: every batch
waiting for it raises :class:`ParseWorkerError` and none of those batches is checkpointed
(chunks of one that arrived before may be stored; the stable ids make the re-read store
nothing twice), so the collector reads them again; the pipeline starts new workers for the
next batch.  A parser that raises something other than ``NotMyFormat``/``BadRecord`` (a bug)
also raises :class:`ParseWorkerError` for its batch, with the worker's traceback.  Workers
exit when the process that started them is gone.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import marshal
import multiprocessing
import pickle
import queue
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from collectors.base import BadRecord, CollectorError, NotMyFormat, Parser, RawRecord, get_parser, registered_parser
from collectors.lines import LineBlock, block_records
from collectors.provenance import FUTURE_TOLERANCE_SECONDS, Provenance
from store.errors import EventValidationError
from store.event import Event, StoredWire, Wire
from store.sqlite_events import index_entry

log = logging.getLogger(__name__)

#: a record on the wire: data, source, offset, received, peer, path
Row = tuple[str, str, str, datetime, str | None, str | None]
#: per record: its stamped events, or the dead-letter reason
Outcome = list[Event] | str
#: what a batch is sent as: its records as rows, or a file's block of lines (the worker makes the records)
Work = list[Row] | LineBlock
#: a record that goes to the dead letters: source, offset, reason, raw data
Dead = tuple[str, str, str, str]
#: per source and chunk: source, events parsed, and their clock skews' last, smallest and largest value and
#: how many lie beyond FUTURE_TOLERANCE_SECONDS (``None`` and 0 when no event had a skew)
SourceCount = tuple[str, int, float | None, float | None, float | None, int]
#: per record that gave events (only when the pipeline enriches): source, offset, raw data, number of events
RecordInfo = tuple[str, str, str, int]

#: seconds a worker waits for work before it checks that its parent is still alive
_PARENT_POLL = 1.0
#: seconds a new worker may take to import the parsers and say it is ready
_START_TIMEOUT = 60.0
_READY = ("ready",)
#: a worker sends a request's outcomes back in chunks of about this many events
CHUNK_EVENTS = 500


class ParseWorkerError(CollectorError):
    """A parse worker died or its parser failed; the batch was not checkpointed (at most its first chunks stored)."""


@dataclass(frozen=True)
class Chunk:
    """Part of a batch's outcome, in record order: what the pipeline's process stores, counts and dead-letters."""

    events: list[Event]
    dead: list[Dead]
    #: per source (see :data:`SourceCount`)
    counts: list[SourceCount]
    #: the records the events came from, in order, when the pool was asked for them (``records=True``)
    records: list[RecordInfo] | None


def to_row(record: RawRecord) -> Row:
    return (record.data, record.source, record.offset, record.received, record.peer, record.path)


def work_records(work: Work) -> Iterator[RawRecord]:
    """The records of a batch as it was sent."""
    if isinstance(work, LineBlock):
        return block_records(work)
    return (RawRecord(*row) for row in work)


def parse_record(
    parser: Parser, record: RawRecord, provenance: Provenance, now: datetime, index: bool = False
) -> Outcome:
    """Parse and stamp one record: its events (serialised once), or why it goes to the dead letters.

    With ``index`` each event also gets the embedded store's index entry
    (:func:`store.sqlite_events.index_entry`), so the writer does not compute it.
    The reasons are worded as :meth:`IngestPipeline.parse` words them.
    """
    try:
        events = [provenance.stamp(event, record, parser, now) for event in parser.parse(record)]
    except (BadRecord, EventValidationError) as exc:
        return f"[{parser.name}] {type(exc).__name__}: {exc}"
    except NotMyFormat as exc:
        return f"[{parser.name}] not {parser.name} format: {exc}"
    for event in events:
        event.to_json()  # on this core; the text travels with the event
        if index:
            index_entry(event)  # likewise: full-text words and posting keys
    return events


class _Counts:
    """One source's counters within a chunk (see :data:`SourceCount`)."""

    __slots__ = ("future", "high", "last", "low", "parsed")

    def __init__(self) -> None:
        self.parsed = 0
        self.last: float | None = None
        self.low: float | None = None
        self.high: float | None = None
        self.future = 0

    def add(self, events: list[Event]) -> None:
        self.parsed += len(events)
        for event in events:
            skew = event.fields.get("event.skew_seconds")
            if type(skew) is float:
                self.last = skew
                self.low = skew if self.low is None or skew < self.low else self.low
                self.high = skew if self.high is None or skew > self.high else self.high
                if skew > FUTURE_TOLERANCE_SECONDS:
                    self.future += 1


@dataclass(frozen=True)
class Delivery:
    """What the workers send back for each event (one pool, one delivery)."""

    #: each event's index entry made in the worker (the store's work, done on the parsing core)
    index: bool = False
    #: where each event came from (the pipeline needs it to dead-letter a record its enrichers reject)
    records: bool = False
    #: the events with their fields (:meth:`Event.to_wire`); without, :meth:`Event.to_stored_wire`,
    #: whose JSON stands for the fields
    fields: bool = True


def parse_work(
    parser: Parser, work: Work, provenance: Provenance, now: datetime, delivery: Delivery = Delivery()
) -> Iterator[tuple[list[Wire] | list[StoredWire], list[Dead], list[SourceCount], list[RecordInfo] | None]]:
    """Parse a batch; yields its outcome in chunks of about :data:`CHUNK_EVENTS` events, as plain values.

    Each chunk: the events (as ``delivery`` says), the dead letters, the counts per source and,
    with ``delivery.records``, where each event came from.  The last chunk may be empty.
    """
    index, records, fields = delivery.index, delivery.records, delivery.fields
    wire: list[Any] = []
    pack = Event.to_wire if fields else Event.to_stored_wire
    dead: list[Dead] = []
    counts: dict[str, _Counts] = {}
    info: list[RecordInfo] | None = [] if records else None
    for record in work_records(work):
        outcome = parse_record(parser, record, provenance, now, index)
        if isinstance(outcome, str):
            dead.append((record.source, record.offset, outcome, record.data))
            continue
        wire.extend([pack(event) for event in outcome])
        source = counts.get(record.source)
        if source is None:
            source = counts[record.source] = _Counts()
        source.add(outcome)
        if info is not None and outcome:
            info.append((record.source, record.offset, record.data, len(outcome)))
        if len(wire) >= CHUNK_EVENTS:
            yield wire, dead, _count_list(counts), info
            wire, dead, counts, info = [], [], {}, [] if records else None
    yield wire, dead, _count_list(counts), info


def _count_list(counts: dict[str, _Counts]) -> list[SourceCount]:
    return [(name, c.parsed, c.last, c.low, c.high, c.future) for name, c in counts.items()]


def _serve(
    requests: Any,
    results: Connection,
    name: str,
    hostname: str,
    delivery: Delivery = Delivery(),
) -> None:
    """A worker's loop: (seq, parser key, parser spec, work, now) in, (seq, chunk, error, last) out.

    The outcomes of one request come in chunks of about :data:`CHUNK_EVENTS` events (``last`` true
    on the final one), so the writer stores the first events of a large batch (a SCADA CSV row
    is one event per tag) while the rest is parsed.
    """
    import collectors.parsers  # noqa: F401 -- registers the parsers in this (spawned) process

    provenance = Provenance(name, hostname)
    parsers: dict[int, Parser] = {}
    parent = multiprocessing.parent_process()
    results.send_bytes(marshal.dumps(_READY))  # imported and ready: the pool's start waits for this
    while True:
        try:
            message = requests.get(timeout=_PARENT_POLL)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return  # the pipeline's process was killed: nobody will read our results
            continue
        if message is None:
            return
        seq, key, spec, work, now = message
        try:
            parser = parsers.get(key)
            if parser is None:
                parser = parsers[key] = pickle.loads(spec) if isinstance(spec, bytes) else get_parser(spec)  # noqa: S301 -- from our own process
            chunks = parse_work(parser, work, provenance, now, delivery)
            chunk = next(chunks)
            for following in chunks:
                # marshal: the events are plain values (Event.to_wire); about twice as fast as pickle both ways
                results.send_bytes(marshal.dumps((seq, chunk, None, False)))
                chunk = following
        except Exception as exc:  # a parser bug: the pipeline raises it for this batch, the worker goes on
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            results.send_bytes(marshal.dumps((seq, None, error, True)))
            continue
        results.send_bytes(marshal.dumps((seq, chunk, None, True)))


class ParsePool:
    """N parse worker processes; :meth:`submit` a batch to one, :meth:`chunks` yields its outcomes.

    Thread-safe: several collector threads may submit and wait at once.
    """

    def __init__(
        self,
        workers: int,
        name: str,
        hostname: str,
        start_method: str = "spawn",
        delivery: Delivery = Delivery(),
    ) -> None:
        if workers < 1:
            raise CollectorError("parse workers: at least one worker is needed")
        context: Any = multiprocessing.get_context(start_method)
        self.workers = workers
        self._unpack = Event.from_wire if delivery.fields else Event.from_stored_wire
        self._requests: list[Any] = []
        self._results: list[Connection] = []
        self._processes: list[Any] = []
        for n in range(workers):
            requests = context.Queue()
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_serve,
                args=(requests, send, name, hostname, delivery),
                name=f"citysoc-parse-{n}",
                daemon=True,
            )
            process.start()
            send.close()  # only the worker holds the sending end: its death reads as end of file
            self._requests.append(requests)
            self._results.append(receive)
            self._processes.append(process)
        self._closed = False
        for process, receive in zip(self._processes, self._results, strict=True):
            # started means imported and listening: a worker that cannot start is an error now, not at a batch
            try:
                ready = receive.poll(_START_TIMEOUT) and marshal.loads(receive.recv_bytes()) == _READY  # noqa: S302
            except (EOFError, OSError):
                ready = False
            if not ready:
                self.close()
                raise ParseWorkerError(
                    f"parse worker {process.name} did not start (exit code {process.exitcode}, waited up to "
                    f"{_START_TIMEOUT:.0f} s); its error output above says why"
                )
        self._seq = itertools.count()
        #: per worker: ticket -> chunks received and not yet taken (outcomes, error, last)
        self._stash: list[dict[int, collections.deque[tuple[Any, str | None, bool]]]] = [
            {} for _ in range(workers)
        ]
        self._stash_lock = threading.Lock()
        self._read_locks = [threading.Lock() for _ in range(workers)]
        self._send_lock = threading.Lock()
        #: id(parser) -> (parser, key, spec); the parser is kept so its id is not reused
        self._parsers: dict[int, tuple[Parser, int, str | bytes]] = {}
        self._known: list[set[int]] = [set() for _ in range(workers)]
        self.broken: str | None = None

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for operators and the crash test)."""
        return [process.pid for process in self._processes]

    def _parser(self, parser: Parser) -> tuple[int, str | bytes]:
        entry = self._parsers.get(id(parser))
        if entry is None:
            try:
                spec: str | bytes = pickle.dumps(parser)
            except (TypeError, AttributeError, pickle.PicklingError) as exc:
                # parsers holding locks (per-source state) are made fresh from the registry in the worker
                if registered_parser(parser.name) is not type(parser):
                    raise CollectorError(
                        f"parser {parser.name!r} ({type(parser).__qualname__}) cannot be sent to a parse worker: "
                        f"it is not picklable ({exc}) and not the registered parser of that name; "
                        "run this collector without parse workers"
                    ) from exc
                spec = parser.name
            entry = self._parsers[id(parser)] = (parser, len(self._parsers), spec)
        return entry[1], entry[2]

    def worker_for(self, parser: Parser, source: str) -> int:
        """The worker that parses ``source``'s records with ``parser`` (always the same one)."""
        if self.workers == 1:
            return 0
        key, _ = self._parser(parser)
        return hash((key, source)) % self.workers

    def submit(self, worker: int, parser: Parser, work: Work, now: datetime) -> int:
        """Queue a batch (rows or a block of lines) for ``worker``; returns the ticket :meth:`chunks` takes."""
        if self.broken:
            raise ParseWorkerError(self.broken)
        with self._send_lock:  # a parser's spec must reach the worker before the first batch that uses it
            key, spec = self._parser(parser)
            first = key not in self._known[worker]
            self._known[worker].add(key)
            seq = next(self._seq)
            self._requests[worker].put((seq, key, spec if first else None, work, now))
        return seq

    def chunks(self, worker: int, seq: int) -> Iterator[Chunk]:
        """The outcome of ticket ``seq`` as the worker sends it: in order, in chunks of about
        :data:`CHUNK_EVENTS` events; each chunk as soon as it arrives."""
        unpack: Any = self._unpack
        while True:
            out, error, last = self._next_chunk(worker, seq)
            if error is not None or out is None:
                raise ParseWorkerError(
                    f"parse worker {worker}: the parser failed on a batch (none of it stored from there on): {error}"
                )
            wire, dead, counts, records = out
            yield Chunk([unpack(w) for w in wire], dead, counts, records)
            if last:
                return

    def _next_chunk(self, worker: int, seq: int) -> tuple[Any, str | None, bool]:
        stash = self._stash[worker]
        while True:
            with self._stash_lock:
                waiting = stash.get(seq)
                if waiting:
                    chunk = waiting.popleft()
                    if chunk[2]:
                        del stash[seq]
                    return chunk
                if self.broken:
                    raise ParseWorkerError(self.broken)
            with self._read_locks[worker]:
                with self._stash_lock:
                    if stash.get(seq):
                        continue
                try:
                    got, out, error, last = marshal.loads(self._results[worker].recv_bytes())  # noqa: S302 -- ours
                except (EOFError, OSError) as exc:
                    process = self._processes[worker]
                    process.join(timeout=1.0)
                    self.broken = (
                        f"parse worker {process.name} (pid {process.pid}) died (exit code {process.exitcode}); "
                        "the batches it held were not stored and will be read again from the last checkpoint"
                    )
                    raise ParseWorkerError(self.broken) from exc
                with self._stash_lock:
                    stash.setdefault(got, collections.deque()).append((out, error, last))

    def close(self) -> None:
        """Stop the workers (they finish the batch in hand) and wait for them."""
        if self._closed:
            return
        self._closed = True
        for requests, process in zip(self._requests, self._processes, strict=True):
            if process.is_alive():
                with contextlib.suppress(OSError, ValueError):  # a closed queue: the worker is stopped below
                    requests.put(None)
        for process in self._processes:
            process.join(timeout=5.0)
            if process.is_alive():
                process.kill()
                process.join()
        for requests in self._requests:
            requests.close()
            requests.cancel_join_thread()  # batches a dead worker never read are dropped: they were not stored
        for results in self._results:
            results.close()
