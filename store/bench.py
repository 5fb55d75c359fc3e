"""Store-only ingest micro-benchmark: ``SQLiteStore.put_events`` per event against a bare JSON insert.

:func:`bench_put_events` takes events already built (parsed, stamped and, as parse workers
deliver them, serialised and indexed: ``to_json`` and :func:`store.sqlite_events.index_entry`
are called once before timing, unless ``prepared=False``) and stores them in
batches into a fresh embedded store, then inserts the same documents into a one-column
table with the same WAL settings -- the floor any event store pays for the documents
alone -- in the same run, alternating the two ``rounds`` times so both see the same load.
It reports wall-clock and CPU time per event (a shared machine's load shows in the first,
the work in the second), the part of it spent inside the write lock (``BEGIN IMMEDIATE`` to
``COMMIT``: what one writer at a time serialises, so what caps the rate of all collector
processes together) and the file size per event.  The caller supplies the events
(``collectors.bench`` makes them from its load generator): the store layer cannot import
the parsers.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from store.event import Event
from store.sqlite import SQLiteStore
from store.sqlite_events import index_entry


@dataclass(frozen=True)
class PutEventsFigures:
    """Medians over the rounds, per event."""

    events: int
    put_us: float
    put_cpu_us: float
    locked_us: float
    locked_cpu_us: float
    reference_us: float
    reference_cpu_us: float
    duplicates_us: float
    bytes_per_event: float

    #: documents serialised and index entries computed before timing (as parse workers deliver them)
    prepared: bool = True

    def lines(self) -> list[str]:
        before = "documents serialised and index entries computed" if self.prepared else "documents serialised"
        return [
            f"store only, {self.events} events per round ({before} before timing):",
            f"  SQLiteStore.put_events       {self.put_us:8.1f} us/event wall, {self.put_cpu_us:6.1f} CPU",
            f"    of which in the write lock {self.locked_us:8.1f} us/event wall, {self.locked_cpu_us:6.1f} CPU",
            f"  bare JSON insert (reference) {self.reference_us:8.1f} us/event wall, {self.reference_cpu_us:6.1f} CPU",
            f"  put_events / reference       {self.put_us / self.reference_us:8.2f}x wall, "
            f"{self.put_cpu_us / self.reference_cpu_us:.2f}x CPU",
            f"  the same events again (all duplicates) {self.duplicates_us:6.1f} us/event wall",
            f"  database file {self.bytes_per_event:,.0f} bytes/event",
        ]


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


class _TimedStore(SQLiteStore):
    """The embedded store, adding up the time its write transactions hold the lock."""

    locked = 0.0
    locked_cpu = 0.0

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        wall, cpu = time.perf_counter(), time.process_time()
        with super()._write() as conn:
            yield conn
        self.locked += time.perf_counter() - wall
        self.locked_cpu += time.process_time() - cpu


def _put(path: Path, events: Sequence[Event], batch: int) -> tuple[float, float, float, int, float, float]:
    store = _TimedStore(path)
    try:
        store.locked = store.locked_cpu = 0.0  # opening the store wrote its tables

        def put() -> None:
            for i in range(0, len(events), batch):
                store.put_events(events[i : i + batch])

        wall, cpu = _timed(put)
        locked, locked_cpu = store.locked, store.locked_cpu
        dup_wall, _ = _timed(put)
        stored = store.count_events()
    finally:
        store.close()
    if stored != len({e.id for e in events}):
        raise RuntimeError(f"put_events stored {stored} of {len(events)} events")
    size = sum(f.stat().st_size for f in path.parent.iterdir() if f.name.startswith(path.name))
    return wall, cpu, dup_wall, size, locked, locked_cpu


def _reference(path: Path, docs: list[tuple[str, str]], batch: int) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE docs(id TEXT PRIMARY KEY, doc TEXT NOT NULL)")

        def insert() -> None:
            for i in range(0, len(docs), batch):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO docs VALUES (?, ?) ON CONFLICT(id) DO NOTHING", docs[i : i + batch])
                conn.execute("COMMIT")

        return _timed(insert)
    finally:
        conn.close()


def bench_put_events(
    events: Sequence[Event],
    batch: int = 500,
    rounds: int = 3,
    workdir: Path | None = None,
    print_to: Callable[[str], None] | None = print,
    prepared: bool = True,
) -> PutEventsFigures:
    """Time ``put_events`` and the bare-insert reference on ``events``, alternating, ``rounds`` times each.

    ``prepared`` computes each event's index entry before timing, as parse workers deliver
    events; without it ``put_events`` computes them (the inline pipeline's case).
    """
    if not events:
        raise ValueError("bench_put_events needs events to store")
    docs = [(e.id, e.to_json()) for e in events]  # serialised once, before any timing, for both sides
    if prepared:
        for e in events:
            index_entry(e)
    else:  # events that were indexed before (e.g. by an earlier call) are rebuilt without their entry
        events = [e.with_fields({}) for e in events]
        for e in events:
            e.to_json()
    base = Path(tempfile.mkdtemp(prefix="citysoc-bench-store-", dir=workdir))
    put: list[tuple[float, float, float, int, float, float]] = []
    ref: list[tuple[float, float]] = []
    try:
        for n in range(rounds):
            put.append(_put(base / f"store-{n}.db", events, batch))
            ref.append(_reference(base / f"reference-{n}.db", docs, batch))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    count = len(events)
    figures = PutEventsFigures(
        events=count,
        put_us=statistics.median(p[0] for p in put) / count * 1e6,
        put_cpu_us=statistics.median(p[1] for p in put) / count * 1e6,
        locked_us=statistics.median(p[4] for p in put) / count * 1e6,
        locked_cpu_us=statistics.median(p[5] for p in put) / count * 1e6,
        reference_us=statistics.median(r[0] for r in ref) / count * 1e6,
        reference_cpu_us=statistics.median(r[1] for r in ref) / count * 1e6,
        duplicates_us=statistics.median(p[2] for p in put) / count * 1e6,
        bytes_per_event=statistics.median(p[3] for p in put) / count,
        prepared=prepared,
    )
    if print_to is not None:
        for line in figures.lines():
            print_to(line)
    return figures
