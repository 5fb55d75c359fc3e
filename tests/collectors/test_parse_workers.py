"""Parse workers: the same events, dead letters and counters as inline parsing; order; failures.

The workers are real spawned processes.  The parsers that kill their worker or raise are
defined here, so the workers import this module to unpickle them.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from collectors.base import CollectorError, Parser, RawRecord, get_parser
from collectors.bench import TEMPLATES, make_lines
from collectors.parse_workers import CHUNK_EVENTS, ParseWorkerError
from collectors.pipeline import IngestPipeline
from collectors.transports.files import FileCollector
from store.event import Event, format_ts, parse_ts
from store.sqlite import SQLiteStore
from store.sqlite_events import index_entry
from tests.helpers import REPO, T0

DATA = REPO / "tests" / "data" / "collectors"

#: real samples, stateful parsers among them (the SCADA CSV header, Zeek TSV headers)
SAMPLES = [
    ("scada.csv", DATA / "scada" / "pumping_station.csv"),
    ("zeek", DATA / "zeek" / "modbus.log"),
    ("web.access", DATA / "web" / "access.log"),
    ("cef", DATA / "cef" / "cef.log"),
]


def _documents(store: SQLiteStore) -> dict[str, dict[str, Any]]:
    """Stored events by id, without the fields that differ between runs: the receipt and ingest times.

    The skew that comes from the receipt time is checked against it here instead.
    """
    out = {}
    for event in store.iter_events():
        doc = event.to_document()
        created = datetime.fromisoformat(doc["event"].pop("created"))
        assert doc["event"].pop("skew_seconds") == (event.timestamp - created).total_seconds()
        assert doc["event"].pop("ingested") >= format_ts(created)
        if doc["@timestamp"] == format_ts(created):
            doc["@timestamp"] = "when received"  # a record without a time of its own (CEF without rt)
        out[event.id] = doc
    return out


def _postings(store: SQLiteStore) -> dict[tuple[str, str], set[tuple[str, int]]]:
    """The posting rows as (field, value) -> (event id, row's second - event's second) for each event listed.

    Rids differ between stores, and so does the time of an event without one of its own (taken
    when it is received): its row's second is compared with the event's instead.
    """
    conn = store._conn()
    events = {rid: (event_id, int(parse_ts(ts).timestamp())) for rid, event_id, ts in conn.execute(
        "SELECT rid, id, ts FROM events")}  # fmt: skip
    out: dict[tuple[str, str], set[tuple[str, int]]] = {}
    for name, value, epoch, rid, more in conn.execute("SELECT field, value, epoch, rid, more FROM event_terms"):
        for offset in json.loads(more):
            event_id, second = events[rid + offset]
            out.setdefault((name, value), set()).add((event_id, epoch - second))
    return out


def _words(store: SQLiteStore) -> list[str]:
    """Words of the stored documents to search for (the contentless full-text table cannot be read back)."""
    words: set[str] = set()
    for event in store.iter_events():
        words.update(re.findall(r"\b[A-Za-z][A-Za-z0-9]{3,}\b", index_entry(Event.from_json(event.to_json()))[1]))
    return sorted(words)[:: max(1, len(words) // 150)]


def _ingest_files(tmp: Path, label: str, workers: int, files: list[tuple[str, Path]]) -> IngestPipeline:
    store = SQLiteStore(tmp / f"{label}.db")
    pipeline = IngestPipeline(store, name="pw-test", parse_workers=workers, max_in_flight=2)
    try:
        for fmt, path in files:
            FileCollector(pipeline, get_parser(fmt), path, tmp / f"state-{label}", batch_size=7).run_once()
    finally:
        pipeline.close()
    return pipeline


def test_workers_store_exactly_what_inline_parsing_stores(tmp_path: Path) -> None:
    files = list(SAMPLES)
    for fmt in TEMPLATES:  # and every benchmark format, with a line no parser accepts in the middle
        lines = make_lines(fmt, 60)
        lines.insert(len(lines) // 2, "this line is in no format at all")
        path = tmp_path / f"{fmt}.log"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append((fmt, path))
    inline = _ingest_files(tmp_path, "inline", 0, files)
    parallel = _ingest_files(tmp_path, "workers", 2, files)
    assert parallel.index_in_workers  # the default from two workers: the index entries came with the events
    try:
        stored = _documents(inline.store)  # type: ignore[arg-type]
        assert len(stored) > 400
        assert _documents(parallel.store) == stored  # type: ignore[arg-type]
        letters = {(d.source, d.offset, d.reason) for d in inline.store.list_dead_letters(limit=1000)}
        assert len(letters) >= len(TEMPLATES)
        assert {(d.source, d.offset, d.reason) for d in parallel.store.list_dead_letters(limit=1000)} == letters
        assert parallel.stats.as_dict() == inline.stats.as_dict()
        assert {name: source.counters() for name, source in parallel.stats.sources.items()} == {
            name: source.counters() for name, source in inline.stats.sources.items()
        }
        # indexed by the workers (full-text words, posting rows) exactly as the writer indexes inline
        assert _postings(parallel.store) == _postings(inline.store)  # type: ignore[arg-type]
        words = _words(inline.store)  # type: ignore[arg-type]
        assert len(words) > 50
        for word in words:
            found = {e.id for e in inline.store.search_events(text=word, limit=10_000)}
            assert found, word
            assert {e.id for e in parallel.store.search_events(text=word, limit=10_000)} == found, word
        for name, value in [("source.ip", "10.20.1.5"), ("event.category", "network"), ("user.name", "root")]:
            found = {e.id for e in inline.store.search_events(filters={name: value}, limit=10_000)}
            assert {e.id for e in parallel.store.search_events(filters={name: value}, limit=10_000)} == found
    finally:
        inline.store.close()
        parallel.store.close()


class _Marked(Parser):
    """Web access lines; a line ``die`` kills its worker, a line ``bug`` raises like a parser bug."""

    name: ClassVar[str] = "test.marked"
    dataset: ClassVar[str] = "web.access"

    def __init__(self, once: Path | None = None) -> None:
        #: when set, ``die`` kills the worker only while this file exists (it is removed first)
        self.once = once

    def parse(self, record: RawRecord) -> list[Event]:
        if record.data == "die" and (self.once is None or self.once.exists()):
            if self.once is not None:
                self.once.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
        if record.data == "bug":
            raise ZeroDivisionError("a parser bug")
        if record.data in ("die", "bug"):
            return []
        return get_parser("web.access").parse(record)


def _records(lines: list[str], first: int = 0) -> list[RawRecord]:
    return [RawRecord(line, "test:marked", str(first + n), received=T0) for n, line in enumerate(lines)]


def test_batches_are_stored_in_order_and_then_runs_after_each(store: SQLiteStore) -> None:
    lines = make_lines("web.access", 40)
    pipeline = IngestPipeline(store, name="pw-test", parse_workers=1, max_in_flight=2)
    seen: list[tuple[int, int]] = []
    try:
        for n in range(4):
            # when a batch's then runs, it and every batch before it are in the store
            pipeline.submit(_records(lines[n * 10 : n * 10 + 10], n * 10), _Marked(),
                            then=lambda n=n: seen.append((n, store.count_events())))
        assert seen[:2] == [(0, 10), (1, 20)]  # back-pressure: at most 2 batches out, the oldest stored first
        pipeline.drain()
    finally:
        pipeline.close()
    assert seen == [(0, 10), (1, 20), (2, 30), (3, 40)]


def test_a_dead_worker_raises_stores_nothing_of_its_batch_and_is_replaced(store: SQLiteStore) -> None:
    lines = make_lines("web.access", 30)
    pipeline = IngestPipeline(store, name="pw-test", parse_workers=1, max_in_flight=4)
    done: list[int] = []
    try:
        pipeline.submit(_records(lines[:10]), _Marked(), then=lambda: done.append(0))
        pipeline.submit(_records([*lines[10:15], "die", *lines[15:20]], 10), _Marked(), then=lambda: done.append(1))
        pipeline.submit(_records(lines[20:], 21), _Marked(), then=lambda: done.append(2))
        with pytest.raises(ParseWorkerError, match=r"parse worker citysoc-parse-0 \(pid \d+\) died"):
            pipeline.drain()
        assert done == [0]  # the batch of the dead worker and the one after it: not stored, no checkpoint
        assert store.count_events() == 10
        pipeline.drain()  # nothing left: the failed batches were dropped, not kept for later
        pipeline.ingest(_records(lines[10:], 10), _Marked())  # new workers take the next batch
    finally:
        pipeline.close()
    assert store.count_events() == 30


def test_a_parser_bug_raises_with_the_workers_traceback_and_the_worker_goes_on(store: SQLiteStore) -> None:
    lines = make_lines("web.access", 10)
    pipeline = IngestPipeline(store, name="pw-test", parse_workers=1)
    try:
        with pytest.raises(ParseWorkerError, match=r"(?s)ZeroDivisionError: a parser bug.*Traceback"):
            pipeline.ingest(_records([*lines[:5], "bug"]), _Marked())
        assert store.count_events() == 0
        pipeline.ingest(_records(lines), _Marked())
    finally:
        pipeline.close()
    assert store.count_events() == 10


def test_a_file_is_read_again_from_its_checkpoint_after_a_worker_died(tmp_path: Path, store: SQLiteStore) -> None:
    lines = make_lines("web.access", 100)
    lines.insert(63, "die")
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    once = tmp_path / "kill-once"
    once.touch()
    pipeline = IngestPipeline(store, name="pw-test", parse_workers=1, max_in_flight=3)
    try:
        collector = FileCollector(pipeline, _Marked(once), log, tmp_path / "state", batch_size=10)
        with pytest.raises(ParseWorkerError):
            collector.run_once()
        point = collector.checkpoint()
        assert point is not None
        assert point.offset == sum(len(line) + 1 for line in lines[:60])  # the last batch stored before it
        assert store.count_events() == 60
        collector.run_once()
    finally:
        pipeline.close()
    assert store.count_events() == 100
    assert store.count_dead_letters() == 0


class _Unpicklable(Parser):
    name: ClassVar[str] = "test.unpicklable"
    dataset: ClassVar[str] = "web.access"

    def __init__(self) -> None:
        self.callback = lambda: None  # a lambda cannot be pickled

    def parse(self, record: RawRecord) -> list[Event]:
        return []


def test_a_parser_that_cannot_reach_a_worker_is_a_clear_error(store: SQLiteStore) -> None:
    pipeline = IngestPipeline(store, name="pw-test", parse_workers=1)
    try:
        with pytest.raises(CollectorError, match=r"cannot be sent to a parse worker.*without parse workers"):
            pipeline.ingest(_records(["x"]), _Unpicklable())
    finally:
        pipeline.close()


def test_negative_worker_counts_are_refused(store: SQLiteStore) -> None:
    with pytest.raises(CollectorError, match="parse_workers must be 0"):
        IngestPipeline(store, parse_workers=-1)


def test_a_large_batch_is_stored_in_chunks_as_the_worker_parses_it_and_checkpointed_once(tmp_path: Path) -> None:
    lines = make_lines("scada.csv", 40 * 60)  # a header and 60 rows of 40 tags: 2400 events
    path = tmp_path / "scada.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = SQLiteStore(tmp_path / "chunks.db")
    collector: FileCollector | None = None
    stored: list[tuple[int, int | None]] = []

    class Listener:
        def on_events_stored(self, events: Sequence[Event]) -> None:
            assert collector is not None
            point = collector.checkpoint()
            stored.append((len(events), point.offset if point else None))

    pipeline = IngestPipeline(store, listeners=[Listener()], name="pw-test", parse_workers=1, index_in_workers=True)
    try:
        collector = FileCollector(pipeline, get_parser("scada.csv"), path, tmp_path / "state", batch_size=100)
        assert collector.run_once() == 61
    finally:
        pipeline.close()
        store.close()
    assert sum(n for n, _ in stored) == 2400
    assert len(stored) >= 4 and max(n for n, _ in stored) <= CHUNK_EVENTS + 40  # chunks of whole records
    assert {offset for _, offset in stored} == {None}  # one batch: checkpointed only once all of it is stored
    point = collector.checkpoint()
    assert point is not None and point.offset == path.stat().st_size


def test_files_read_without_draining_are_stored_and_checkpointed_by_drain(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "ahead.db")
    pipeline = IngestPipeline(store, name="pw-test", parse_workers=1, max_in_flight=2)
    collectors = []
    try:
        for fmt in ("web.access", "cef", "zeek"):
            path = tmp_path / f"{fmt}.log"
            path.write_text("\n".join(make_lines(fmt, 120)) + "\n", encoding="utf-8")
            collector = FileCollector(pipeline, get_parser(fmt), path, tmp_path / "state", batch_size=50)
            assert collector.run_once(drain=False) == 120
            collectors.append((collector, path))
        assert pipeline.stats.stored < 360  # the last batches were still out when the files were closed
        pipeline.drain()
        assert pipeline.stats.stored == store.count_events() == 360
        for collector, path in collectors:
            point = collector.checkpoint()
            assert point is not None and point.offset == path.stat().st_size
            assert collector.run_once() == 0  # nothing read twice
    finally:
        pipeline.close()
        store.close()
