"""The write-ahead spool: torn tails, segment rotation, a failing store, back-pressure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from collectors.base import RawRecord
from collectors.pipeline import IngestPipeline
from collectors.spool import Rejected, Spool, SpoolError, SpoolFull
from store.event import Event
from store.sqlite import SQLiteStore
from tests.helpers import REPO, T0

SYSLOG = REPO / "tests" / "data" / "collectors" / "syslog.log"


def _records(source: str = "file:syslog.log") -> list[RawRecord]:
    lines = [line for line in SYSLOG.read_text().splitlines() if line.strip()]
    return [RawRecord(line, source, str(i), received=T0) for i, line in enumerate(lines)]


def test_records_survive_reopen_and_are_stored_once(tmp_path: Path, store: SQLiteStore,
                                                    pipeline: IngestPipeline) -> None:
    records = _records()
    spool = Spool(tmp_path / "spool", segment_bytes=600)  # several segments
    for record in records:
        spool.append([record], "syslog")
    spool.close()
    assert len(list((tmp_path / "spool").glob("segment-*.ndjson"))) > 2
    reopened = Spool(tmp_path / "spool", segment_bytes=600)
    handled = reopened.drain(pipeline)
    assert handled == len(records)
    stored, dead = store.count_events(), store.count_dead_letters()
    assert stored + dead == len(records) and stored > 0
    assert reopened.pending_bytes() == 0
    assert len(list((tmp_path / "spool").glob("segment-*.ndjson"))) == 1  # drained segments are removed
    assert reopened.drain(pipeline) == 0
    reopened.close()


def test_torn_last_line_is_cut_on_open(tmp_path: Path, pipeline: IngestPipeline, store: SQLiteStore) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(_records()[:2], "syslog")
    spool.close()
    segment = next((tmp_path / "spool").glob("segment-*.ndjson"))
    with segment.open("ab") as fh:
        fh.write(b'{"k":"r","p":"syslog","d":"<13>Nov 21 08:00:0')  # the process died here, never acknowledged
    reopened = Spool(tmp_path / "spool")
    assert reopened.drain(pipeline) == 2
    reopened.append(_records()[2:3], "syslog")
    assert reopened.drain(pipeline) == 1
    reopened.close()


class _BrokenStore(SQLiteStore):
    fail = True

    def put_events(self, events: Sequence[Event]) -> list[Event]:
        if self.fail:
            raise OSError("disk I/O error")
        return super().put_events(events)


def test_store_failure_keeps_the_records_spooled(tmp_path: Path) -> None:
    broken = _BrokenStore(tmp_path / "broken.db")
    try:
        pipeline = IngestPipeline(broken)
        spool = Spool(tmp_path / "spool")
        spool.append(_records()[:3], "syslog")
        with pytest.raises(OSError, match="disk I/O"):
            spool.drain(pipeline)
        assert spool.pending_bytes() > 0
        broken.fail = False
        assert spool.drain(pipeline) == 3
        assert broken.count_events() + broken.count_dead_letters() == 3
        spool.close()
    finally:
        broken.close()


def test_dead_letters_and_back_pressure(tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline) -> None:
    spool = Spool(tmp_path / "spool", max_pending_bytes=500)
    spool.append([Rejected("syslog:tcp:x", "tcp:peer:7", "[syslog tcp] frame over the limit", "<13>...")], "syslog")
    spool.append(_records()[:3], "syslog")
    with pytest.raises(SpoolFull, match="wait to be stored"):
        spool.append(_records()[3:4], "syslog")
    spool.drain(pipeline)
    spool.append(_records()[3:4], "syslog")  # room again
    spool.close()
    dead = store.list_dead_letters()
    assert [(d.source, d.offset, d.reason) for d in dead] == [
        ("syslog:tcp:x", "tcp:peer:7", "[syslog tcp] frame over the limit")]


def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    try:
        with pytest.raises(SpoolError, match="in use by another collector process"):
            Spool(tmp_path / "spool")
    finally:
        spool.close()
    Spool(tmp_path / "spool").close()  # free again once closed


def test_unreadable_cursor_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "cursor.json").write_text("{not json")
    with pytest.raises(SpoolError, match=r"cursor .* is unreadable"):
        Spool(tmp_path / "spool")
