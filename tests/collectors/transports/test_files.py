from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from collectors.parsers.camera import CameraPlatformParser
from collectors.parsers.zeek import ZeekParser
from collectors.pipeline import IngestPipeline
from collectors.transports import files
from collectors.transports.files import FileCollector
from store.base import Store
from store.event import Event
from store.sqlite import SQLiteStore
from tests.collectors.samples import DATA, wait_until

CAMERA = DATA / "camera.jsonl"
LINES = CAMERA.read_bytes().splitlines(keepends=True)  # 9 good lines, then 5 bad ones
GOOD, BAD = LINES[:9], LINES[9:]


def offsets(lines: list[bytes], start: int = 0) -> list[str]:
    out, position = [], start
    for line in lines:
        out.append(str(position))
        position += len(line)
    return out


def by_offset(store: Store) -> list[Event]:
    return sorted(store.search_events(limit=1000), key=lambda e: int(str(e.get("labels.source_offset"))))


def camera_collector(pipeline: IngestPipeline, path: Path, state: Path) -> FileCollector:
    return FileCollector(pipeline, CameraPlatformParser(), path, state)


def test_good_lines_are_stored_and_bad_ones_dead_lettered_with_their_offsets(
    tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    log = tmp_path / "camera.jsonl"
    shutil.copy(CAMERA, log)
    collector = camera_collector(pipeline, log, tmp_path / "state")
    assert collector.run_once() == 14
    events = by_offset(store)
    assert [e.get("labels.source_offset") for e in events] == offsets(GOOD)
    assert [e.get("event.original") for e in events] == [line.decode().rstrip("\n") for line in GOOD]
    assert {(e.get("labels.source"), e.get("log.file.path"), e.get("observer.type")) for e in events} == {
        (f"file:{log}", str(log), "file")
    }
    dead = sorted(store.list_dead_letters(), key=lambda d: int(d.offset))
    bad_offsets = offsets(BAD, start=sum(map(len, GOOD)))
    assert [(d.source, d.offset, d.raw) for d in dead] == [
        (f"file:{log}", offset, line.decode().rstrip("\n")) for offset, line in zip(bad_offsets, BAD, strict=True)
    ]
    assert [d.reason for d in dead] == [
        "[camera.platform] BadRecord: invalid JSON at column 90: Expecting value",
        "[camera.platform] BadRecord: key 'device_id' is missing",
        "[camera.platform] BadRecord: key 'src_ip': '10.20.5.300' is not an IP address",
        "[camera.platform] BadRecord: key 'event': 'reboot' is not one of login, logout, config_change, "
        "firmware_update, stream_access, tamper, offline, online",
        "[camera.platform] BadRecord: key 'user' must be a string, not int",
    ]
    point = collector.checkpoint()
    assert point is not None and point.offset == log.stat().st_size and point.inode == log.stat().st_ino
    assert collector.run_once() == 0
    assert os.listdir(tmp_path / "state") == [collector.checkpoint_path.name]  # no temporary files left


def test_script_and_shell_text_is_stored_verbatim(tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline) -> None:
    log = tmp_path / "camera.jsonl"
    log.write_bytes(GOOD[0])
    camera_collector(pipeline, log, tmp_path / "state").run_once()
    [event] = store.search_events(text="script")
    assert store.get_event(event.id).get("message").endswith(
        "detail: web login rejected; UA=<script>alert(1)</script> $(rm -rf /)"
    )
    assert json.loads(event.get("event.original"))["detail"] == "web login rejected; UA=<script>alert(1)</script> " \
                                                                "$(rm -rf /)"


def test_a_partial_last_line_waits_and_a_restart_resumes_without_duplicates_or_loss(tmp_path: Path) -> None:
    log, state, db = tmp_path / "camera.jsonl", tmp_path / "state", tmp_path / "citysoc.db"
    log.write_bytes(GOOD[0] + GOOD[1] + GOOD[2][:40])
    with SQLiteStore(db) as store:
        first = camera_collector(IngestPipeline(store), log, state)
        assert first.run_once() == 2
        assert first.checkpoint().offset == len(GOOD[0]) + len(GOOD[1])  # type: ignore[union-attr]
    with open(log, "ab") as fh:  # the writer finishes the line and adds one; the collector was restarted
        fh.write(GOOD[2][40:] + GOOD[3])
    with SQLiteStore(db) as store:
        pipeline = IngestPipeline(store)
        assert camera_collector(pipeline, log, state).run_once() == 2
        assert pipeline.stats.duplicates == 0 and pipeline.stats.dead_lettered == 0
        assert [e.get("labels.source_offset") for e in by_offset(store)] == offsets(GOOD[:4])


def test_losing_the_checkpoint_after_storing_repeats_nothing(
    tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    log = tmp_path / "camera.jsonl"
    log.write_bytes(b"".join(GOOD[:3]))
    collector = camera_collector(pipeline, log, tmp_path / "state")
    collector.run_once()
    collector.checkpoint_path.unlink()  # as if the process died between storing and checkpointing
    assert collector.run_once() == 3
    assert store.count_events() == 3 and pipeline.stats.duplicates == 3


def test_blank_lines_and_crlf(tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline) -> None:
    log = tmp_path / "camera.jsonl"
    log.write_bytes(b"\n  \n" + GOOD[0].rstrip(b"\n") + b"\r\n\n")
    collector = camera_collector(pipeline, log, tmp_path / "state")
    assert collector.run_once() == 1
    [event] = store.search_events()
    assert event.get("labels.source_offset") == "4" and not str(event.get("event.original")).endswith("\r")
    assert collector.checkpoint().offset == log.stat().st_size  # type: ignore[union-attr]


def test_invalid_utf8_is_replaced_and_the_parser_decides(
    tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    log = tmp_path / "camera.jsonl"
    good = GOOD[6].replace(b"lens covered", b"lens \xff\xfe covered")
    bad = b'{"ts"\xff: 1}\n'
    log.write_bytes(good + bad)
    assert camera_collector(pipeline, log, tmp_path / "state").run_once() == 2
    [event] = store.search_events()
    assert event.get("message").endswith("detail: lens \ufffd\ufffd covered")
    [dead] = store.list_dead_letters()
    assert dead.raw == '{"ts"\ufffd: 1}' and dead.offset == str(len(good))


def test_truncation_starts_over_from_the_beginning(
    tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    log = tmp_path / "camera.jsonl"
    log.write_bytes(b"".join(GOOD[:3]))
    collector = camera_collector(pipeline, log, tmp_path / "state")
    collector.run_once()
    inode = log.stat().st_ino
    with open(log, "wb") as fh:  # truncate in place (copytruncate), same inode, shorter than the offset
        fh.write(GOOD[8])
    assert log.stat().st_ino == inode
    assert collector.run_once() == 1
    assert store.count_events() == 4
    [online] = [e for e in store.search_events(limit=10) if e.get("event.action") == "online"]
    assert online.get("labels.source_offset") == "0"
    assert collector.checkpoint().offset == len(GOOD[8])  # type: ignore[union-attr]


def test_a_replaced_file_longer_than_the_offset_is_read_from_the_start(
    tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    log = tmp_path / "camera.jsonl"
    log.write_bytes(b"".join(GOOD[:2]))
    collector = camera_collector(pipeline, log, tmp_path / "state")
    collector.run_once()
    with open(log, "wb") as fh:  # truncated and refilled between two reads: only the first bytes tell
        fh.write(b"".join(GOOD[4:9]))
    assert collector.run_once() == 5
    assert store.count_events() == 7


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(
    tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    log, rotated = tmp_path / "camera.jsonl", tmp_path / "camera.jsonl.1"
    log.write_bytes(b"".join(GOOD[:2]))
    collector = camera_collector(pipeline, log, tmp_path / "state")
    assert collector.run_once() == 2
    with open(log, "ab") as fh:
        fh.write(GOOD[2])  # written just before the rotation, not read yet
    log.rename(rotated)
    log.write_bytes(GOOD[3])
    assert collector.run_once() == 2
    events = store.search_events(limit=10)
    tail = next(e for e in events if e.get("event.original") == GOOD[2].decode().rstrip("\n"))
    assert (tail.get("log.file.path"), tail.get("labels.source_offset")) == (str(rotated), offsets(GOOD[:3])[2])
    new = next(e for e in events if e.get("event.original") == GOOD[3].decode().rstrip("\n"))
    assert (new.get("log.file.path"), new.get("labels.source_offset")) == (str(log), "0")
    assert collector.checkpoint().inode == log.stat().st_ino  # type: ignore[union-attr]
    assert collector.run_once() == 0
    assert store.count_events() == 4


def test_rotated_away_and_not_recreated_yet(tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline) -> None:
    log = tmp_path / "camera.jsonl"
    log.write_bytes(GOOD[0])
    collector = camera_collector(pipeline, log, tmp_path / "state")
    collector.run_once()
    with open(log, "ab") as fh:
        fh.write(GOOD[1])
    log.rename(tmp_path / "camera.jsonl.1")
    assert collector.run_once() == 1  # the old file's tail
    assert FileCollector(pipeline, CameraPlatformParser(), tmp_path / "never.jsonl", tmp_path / "state").run_once() == 0
    assert store.count_events() == 2


def test_follow_tails_until_stopped(tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline) -> None:
    log = tmp_path / "camera.jsonl"
    log.write_bytes(GOOD[0])
    collector = camera_collector(pipeline, log, tmp_path / "state")
    stop = threading.Event()
    thread = threading.Thread(target=collector.follow, args=(stop, 0.02))
    thread.start()
    try:
        wait_until(lambda: store.count_events() == 1, what="the first line")
        with open(log, "ab") as fh:
            fh.write(GOOD[1] + GOOD[2][:30])
            fh.flush()
            wait_until(lambda: store.count_events() == 2, what="the appended line")
            fh.write(GOOD[2][30:])
        wait_until(lambda: store.count_events() == 3, what="the completed line")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_zeek_tsv_resumes_mid_file_with_a_fresh_parser(
    tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    source = (DATA / "zeek" / "modbus.log").read_bytes().splitlines(keepends=True)
    log = tmp_path / "modbus.log"
    log.write_bytes(b"".join(source[:10]))  # the first header block and two rows
    assert FileCollector(pipeline, ZeekParser(), log, tmp_path / "state").run_once() == 10
    assert store.count_events() == 2
    with open(log, "ab") as fh:
        fh.write(b"".join(source[10:]))
    # a restarted collector: its parser never saw the header lines before the saved offset
    assert FileCollector(pipeline, ZeekParser(), log, tmp_path / "state").run_once() == len(source) - 10
    assert store.count_events() == 6 and store.count_dead_letters() == 0
    assert {e.get("event.dataset") for e in store.search_events(limit=10)} == {"zeek.modbus"}


def test_batches_span_read_blocks_and_are_checkpointed_one_by_one(
    tmp_path: Path, store: SQLiteStore, pipeline: IngestPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of 7 bytes (lines cut anywhere, batches over many reads) give the records and checkpoints of one read."""
    monkeypatch.setattr(files, "READ_BLOCK", 7)
    log = tmp_path / "camera.jsonl"
    lines = [b"\n", *GOOD[:5], b"  \r\n", *GOOD[5:], *BAD, GOOD[0][:30]]  # blank lines, a partial last line
    log.write_bytes(b"".join(lines))
    checkpoints: list[int] = []
    collector = FileCollector(pipeline, CameraPlatformParser(), log, tmp_path / "state", batch_size=4)
    save = collector._save
    monkeypatch.setattr(collector, "_save", lambda point: (checkpoints.append(point.offset), save(point)))
    assert collector.run_once() == 14
    ends = list(itertools.accumulate(len(line) for line in lines))
    # a batch ends after its 4th record (blank lines count as none); the last one after the last complete line
    assert checkpoints == [ends[4], ends[9], ends[13], ends[15]]
    assert [e.get("labels.source_offset") for e in by_offset(store)] == [
        offset for offset, line in zip(offsets(lines), lines, strict=True) if line in GOOD
    ]
    assert len(store.list_dead_letters()) == len(BAD) and pipeline.stats.received == 14
