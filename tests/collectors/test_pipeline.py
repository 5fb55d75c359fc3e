"""The ingest pipeline's bookkeeping: clock skew, per-source counters per stage, dead letters once."""

from __future__ import annotations

import functools
import gc
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest

from collectors.base import RawRecord, get_parser
from collectors.bench import SCADA_TAGS, make_lines
from collectors.metrics import Metrics
from collectors.pipeline import (
    FUTURE_TAG,
    INGEST_GC_THRESHOLD,
    INLINE_IN_FLIGHT,
    MERGE_EVENTS,
    PART_EVENTS,
    IngestPipeline,
    settle_heap,
)
from store.event import Event
from store.sqlite import SQLiteStore
from tests.helpers import T0


def _iot(seconds: float, n: int) -> str:
    """An IoT-platform audit line (the documented format) whose device clock says T0 + seconds."""
    return json.dumps({
        "timestamp": (T0 + timedelta(seconds=seconds)).isoformat(), "platform": "iot-hn-01",
        "event_type": "auth_failure", "protocol": "mqtt",
        "device": {"id": f"sl-{n:04d}", "type": "streetlight"},
        "actor": {"ip": "10.20.7.9", "client_id": f"sl-{n:04d}"},
    })  # fmt: skip


def _record(line: str, source: str, offset: int) -> RawRecord:
    return RawRecord(line, source, str(offset), received=T0)


def test_clock_skew_is_recorded_per_event_and_source_and_the_future_is_flagged(
    pipeline: IngestPipeline, store: SQLiteStore
) -> None:
    records = [
        _record(_iot(-30, 1), "mqtt:late", 1),  # 30 s old when received: delay or a slow clock
        _record(_iot(4.5, 2), "mqtt:ahead", 1),  # within the tolerance
        _record(_iot(3600, 3), "mqtt:ahead", 2),  # an hour in the future: the device clock is ahead
    ]
    pipeline.ingest(records, get_parser("iot.platform"))
    by_device = {e.get("iot.device.id"): e for e in store.iter_events()}
    assert by_device["sl-0001"].get("event.skew_seconds") == -30.0
    assert by_device["sl-0002"].get("event.skew_seconds") == 4.5
    assert by_device["sl-0003"].get("event.skew_seconds") == 3600.0
    assert by_device["sl-0003"].get("event.created") == "2026-11-21T08:00:00.000000Z"
    assert FUTURE_TAG in by_device["sl-0003"].get("tags", ())
    assert FUTURE_TAG not in by_device["sl-0002"].get("tags", ())
    ahead = pipeline.stats.sources["mqtt:ahead"]
    assert (ahead.skew_min, ahead.skew_max, ahead.skew_last, ahead.future) == (4.5, 3600.0, 3600.0, 1)
    assert pipeline.stats.sources["mqtt:late"].future == 0


def test_every_stage_is_counted_per_source_and_exposed_as_metrics(pipeline: IngestPipeline) -> None:
    parser = get_parser("iot.platform")
    pipeline.ingest([_record(_iot(0, 1), "mqtt:a", 1), _record("not json", "mqtt:a", 2)], parser)
    pipeline.ingest([_record(_iot(0, 1), "mqtt:a", 1)], parser)  # resent: a duplicate
    pipeline.ingest([_record(_iot(0, 2), "mqtt:b", 1)], parser)
    a, b = pipeline.stats.sources["mqtt:a"], pipeline.stats.sources["mqtt:b"]
    assert a.counters() == {"received": 3, "parsed": 2, "dead_lettered": 1, "stored": 1, "duplicates": 1, "future": 0}
    assert b.counters() == {"received": 1, "parsed": 1, "dead_lettered": 0, "stored": 1, "duplicates": 0, "future": 0}
    text = Metrics().render(pipeline.stats)
    assert 'citysoc_pipeline_source_records_total{source="mqtt:a",stage="dead_lettered"} 1' in text
    assert 'citysoc_pipeline_source_records_total{source="mqtt:a",stage="duplicates"} 1' in text
    assert 'citysoc_pipeline_source_records_total{source="mqtt:b",stage="stored"} 1' in text
    assert 'citysoc_pipeline_source_skew_seconds{source="mqtt:b",which="max"} 0.0' in text


def test_a_resent_batch_adds_no_dead_letter_twice(pipeline: IngestPipeline, store: SQLiteStore) -> None:
    parser = get_parser("iot.platform")
    batch = [_record("{broken", "http:lgsp", 7), _record(_iot(0, 1), "http:lgsp", 8), _record("[]", "http:lgsp", 9)]
    pipeline.ingest(batch, parser)
    first = store.list_dead_letters()
    pipeline.ingest(batch, parser)  # the sender did not see our acknowledgement and sends it all again
    assert store.count_dead_letters() == 2
    assert store.list_dead_letters() == first
    # the same offset with other content is another record, so another dead letter
    pipeline.ingest([_record("{other", "http:lgsp", 7)], parser)
    assert store.count_dead_letters() == 3


def _holder(store: SQLiteStore) -> sqlite3.Connection:
    """Another writer (as a second collector process) holding the embedded store's write lock."""
    conn = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_inline_batches_wait_while_another_writer_has_the_store_then_go_in_order(store: SQLiteStore) -> None:
    pipeline = IngestPipeline(store, name="collector-test", max_in_flight=3)
    parser = get_parser("iot.platform")
    done: list[int] = []
    holder = _holder(store)
    try:
        for n in (1, 2):  # parsed, kept, and the submitting thread goes on reading
            pipeline.submit([_record(_iot(0, 10 * n + i), "mqtt:a", 10 * n + i) for i in range(3)], parser,
                            then=functools.partial(done.append, n))  # fmt: skip
        assert done == [] and store.count_events() == 0
        assert pipeline.stats.sources["mqtt:a"].parsed == 6 and pipeline.stats.stored == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    pipeline.submit([_record(_iot(0, 31), "mqtt:a", 31)], parser, then=lambda: done.append(3))
    assert done == [1, 2, 3]  # the store was free again: every batch stored, oldest first, each then checkpointed
    assert store.count_events() == 7 and pipeline.stats.sources["mqtt:a"].stored == 7
    holder = _holder(store)
    pipeline.submit([_record(_iot(0, 41), "mqtt:a", 41)], parser, then=lambda: done.append(4))
    holder.execute("COMMIT")
    holder.close()
    pipeline.drain()
    assert done == [1, 2, 3, 4] and store.count_events() == 8


def test_a_batch_beyond_max_in_flight_waits_for_the_oldest_to_be_stored(store: SQLiteStore) -> None:
    assert IngestPipeline(store).max_in_flight == INLINE_IN_FLIGHT
    pipeline = IngestPipeline(store, name="collector-test", max_in_flight=1)  # inline: one batch kept at most
    parser = get_parser("iot.platform")
    done: list[int] = []
    holder = _holder(store)
    pipeline.submit([_record(_iot(0, 1), "mqtt:a", 1)], parser, then=lambda: done.append(1))
    assert done == []

    def commit_later() -> None:
        time.sleep(0.3)
        holder.execute("COMMIT")

    thread = threading.Thread(target=commit_later)
    thread.start()
    try:
        pipeline.submit([_record(_iot(0, 2), "mqtt:a", 2)], parser, then=lambda: done.append(2))
    finally:
        thread.join()
        holder.close()
    assert done[:1] == [1]  # the first was stored (waiting for the lock) before the second submit returned
    pipeline.drain()
    assert done == [1, 2] and store.count_events() == 2


def _batches(pipeline: IngestPipeline, sizes: Sequence[int], done: list[int], first: int = 1) -> None:
    """Submit IoT-platform batches of ``sizes`` records (source mqtt:a; batch n's offsets from 100 * n), each
    checkpointing its number in ``done``."""
    parser = get_parser("iot.platform")
    for n, size in enumerate(sizes, first):
        records = [_record(_iot(0, k), "mqtt:a", k) for k in range(100 * n, 100 * n + size)]
        pipeline.submit(records, parser, then=functools.partial(done.append, n))


def _kept(pipeline: IngestPipeline, store: SQLiteStore, sizes: Sequence[int], done: list[int], first: int = 1) -> None:
    """:func:`_batches` while another writer holds the store's write lock (released before returning)."""
    holder = _holder(store)
    try:
        _batches(pipeline, sizes, done, first)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.fixture
def writes(store: SQLiteStore) -> Iterator[list[tuple[str, list[str]]]]:
    """Every write the store is asked for: (method, the offsets of its events in order)."""
    calls: list[tuple[str, list[str]]] = []
    tried, put = store.try_put_events, store.put_events

    def try_put(events: Sequence[Event]) -> list[Event] | None:
        calls.append(("try", [str(e.fields["labels.source_offset"]) for e in events]))
        return tried(events)

    def put_now(events: Sequence[Event]) -> list[Event]:
        calls.append(("put", [str(e.fields["labels.source_offset"]) for e in events]))
        return put(events)

    store.try_put_events = try_put  # type: ignore[method-assign]
    store.put_events = put_now  # type: ignore[method-assign]
    yield calls


def test_batches_kept_while_another_writer_had_the_store_go_in_one_write_in_order(
    store: SQLiteStore, writes: list[tuple[str, list[str]]]
) -> None:
    pipeline = IngestPipeline(store, name="collector-test")
    done: list[int] = []
    _kept(pipeline, store, [3, 2, 4], done)
    assert [len(offsets) for _, offsets in writes] == [3, 5, 9] and done == []  # each try offered every kept batch
    _batches(pipeline, [1], done, first=4)
    assert writes[-1] == ("try", ["100", "101", "102", "200", "201", "300", "301", "302", "303", "400"])
    assert done == [1, 2, 3, 4]  # one write, then every checkpoint, oldest first
    assert store.count_events() == 10 and pipeline.stats.stored == 10
    assert pipeline.stats.sources["mqtt:a"].stored == 10 and pipeline.stats.duplicates == 0
    stored = [e.fields["labels.source_offset"] for e in store.search_events(limit=20)]
    assert sorted(stored) == sorted(writes[-1][1])


def test_a_kept_batch_already_stored_counts_as_duplicates_in_the_joined_write(
    store: SQLiteStore, writes: list[tuple[str, list[str]]]
) -> None:
    pipeline = IngestPipeline(store, name="collector-test")
    done: list[int] = []
    _batches(pipeline, [2], done)  # stored at once
    _kept(pipeline, store, [2, 3], done)  # a re-read: batch 1 again, then batch 2
    pipeline.drain()
    assert writes[-1] == ("put", ["100", "101", "200", "201", "202"])  # both kept batches in one write
    assert done == [1, 1, 2] and store.count_events() == 5
    assert pipeline.stats.stored == 5 and pipeline.stats.duplicates == 2
    assert pipeline.stats.sources["mqtt:a"].stored == 5 and pipeline.stats.sources["mqtt:a"].duplicates == 2


def test_one_write_takes_kept_batches_up_to_merge_events(
    store: SQLiteStore, writes: list[tuple[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MERGE_EVENTS == 3_000 and INLINE_IN_FLIGHT * 500 == MERGE_EVENTS  # six bench batches of 500 records
    monkeypatch.setattr("collectors.pipeline.MERGE_EVENTS", 5)
    pipeline = IngestPipeline(store, name="collector-test")
    done: list[int] = []
    _kept(pipeline, store, [2, 2, 2, 6], done)
    writes.clear()
    pipeline.drain()  # the store is free: kept batches in writes of at most five events, a larger batch alone
    assert [(how, len(offsets)) for how, offsets in writes] == [("put", 4), ("put", 2), ("put", 6)]
    assert done == [1, 2, 3, 4] and store.count_events() == 12


def test_a_failed_joined_write_drops_every_kept_batch_without_checkpointing_them(
    store: SQLiteStore, writes: list[tuple[str, list[str]]]
) -> None:
    pipeline = IngestPipeline(store, name="collector-test")
    done: list[int] = []
    _kept(pipeline, store, [2, 3], done)

    def broken(events: Sequence[Event]) -> list[Event] | None:
        raise sqlite3.OperationalError("disk I/O error")

    store.try_put_events = broken  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        _batches(pipeline, [1], done, first=3)
    assert done == [] and store.count_events() == 0 and pipeline.stats.stored == 0
    pipeline.drain()  # nothing kept: a collector re-reads from its last checkpoint
    assert done == [] and store.count_events() == 0


def test_a_batch_of_records_giving_many_events_is_checkpointed_once_after_all_of_it(store: SQLiteStore) -> None:
    pipeline = IngestPipeline(store, name="collector-test")
    rows = 30
    lines = make_lines("scada.csv", rows * len(SCADA_TAGS))  # a header and thirty rows of forty tags
    stored: list[int] = []
    original = store.try_put_events

    def counted(events: Sequence[Event]) -> list[Event] | None:
        stored.append(len(events))
        return original(events)

    store.try_put_events = counted  # type: ignore[method-assign]
    stored_when_done: list[int] = []
    pipeline.submit([_record(line, "file:historian.csv", n) for n, line in enumerate(lines)],
                    get_parser("scada.csv"), then=lambda: stored_when_done.append(store.count_events()))  # fmt: skip
    # parts of PART_EVENTS events or more (thirteen rows), and the checkpoint waited for every part
    assert stored == [13 * len(SCADA_TAGS), 13 * len(SCADA_TAGS), 4 * len(SCADA_TAGS)] and PART_EVENTS == 500
    assert stored_when_done == [rows * len(SCADA_TAGS)]
    assert pipeline.stats.stored == rows * len(SCADA_TAGS)


def test_a_settled_collector_process_collects_cycles_less_often_and_skips_start_up_objects() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_threshold() == (INGEST_GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 1000  # modules, parsers and caches made so far
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
