"""Distributed detection: 4 Celery workers on a real Redis give exactly the alerts of one worker.

The stream is camera-platform JSON lines (the VMS format of
``tests/data/collectors/camera.jsonl``) parsed by the real parser and stored by
the real ingest pipeline, whose listener partitions the new event ids by entity.
Attackers brute-force cameras in bursts from many addresses, interleaved with
operator logins, default-account logins and firmware updates, so both the
Camera Credential Brute Force correlation (5 failures per source.ip in 5 min)
and single-event rules fire.  Workers are real processes (``python -m
detections.worker``, solo pool), never eager mode.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from collectors.base import RawRecord
from collectors.parsers.camera import CameraPlatformParser
from collectors.pipeline import IngestPipeline
from detections.distributed import PartitionedDispatcher, entity_key, partition_events, partition_of, queue_name
from detections.errors import DetectionError
from detections.worker import EVALUATE_TASK, create_detection_celery
from store.event import format_ts
from store.sqlite import SQLiteStore
from tests.helpers import T0, event
from tests.services import redis_server

BRUTE_FORCE = "0f6f3a43-4f0e-4c70-8d0b-6a5a2c0d1b02"


def camera_stream(seed: int = 11) -> tuple[list[str], int]:
    """JSON lines of a morning at a VMS, and how many brute-force alerts it must raise."""
    rng = random.Random(seed)
    rows: list[tuple[float, dict[str, Any]]] = []
    expected = 0
    for n in range(24):  # attacker addresses
        src = f"10.20.{5 + n // 10}.{60 + n}"
        t = rng.uniform(0, 600)
        for _burst in range(rng.randint(1, 3)):
            size = rng.randint(2, 13)
            expected += size // 5  # the window clears when it fires
            for _ in range(size):
                t += rng.uniform(1, 20)  # 13 failures fit in 5 minutes
                cam = f"cam-{rng.randint(1, 60):04d}"
                rows.append((t, {"event": "login", "result": "failure", "user": rng.choice(["admin", "root", "888888"]),
                                 "src_ip": src, "device_id": cam}))  # fmt: skip
            t += 900  # next burst well outside the 5-minute window
    for n in range(40):  # operators and default-account logins, firmware updates
        rows.append((rng.uniform(0, 3600), {"event": "login", "result": "success",
                     "user": rng.choice(["op.nguyen", "op.tran", "admin"]), "src_ip": f"10.10.3.{20 + n % 7}",
                     "device_id": f"cam-{n:04d}"}))  # fmt: skip
        if n % 8 == 0:
            rows.append((rng.uniform(0, 3600), {"event": "firmware_update", "result": "success",
                                                "device_id": f"cam-{n:04d}"}))  # fmt: skip
    rows.sort(key=lambda r: r[0])
    lines = []
    for seconds, body in rows:
        record = {"ts": format_ts(T0 + timedelta(seconds=seconds)), "platform": "vms-hn-01", "device_type": "camera",
                  "vendor": "Hikvision", "dst_ip": "10.20.1.42", **body}  # fmt: skip
        lines.append(json.dumps(record))
    return lines, expected


@contextmanager
def detection_workers(redis_url: str, store_url: str, partitions: int) -> Iterator[None]:
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "detections.worker", "--partition", str(p), "--partitions", str(partitions)),
                *("--broker", redis_url, "--store", store_url, "--result-backend", redis_url),
            ],
            stdin=subprocess.DEVNULL,
        )
        for p in range(partitions)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_stream(
    lines: list[str], db: Path, redis_url: str, partitions: int
) -> tuple[SQLiteStore, list[tuple[int, AsyncResult]]]:
    store = SQLiteStore(db)
    app = create_detection_celery(redis_url, f"sqlite:///{db}", result_backend=redis_url)
    results: list[tuple[int, AsyncResult]] = []

    def send(partition: int, ids: list[str]) -> None:
        results.append((partition, app.send_task(EVALUATE_TASK, args=[ids], queue=queue_name(partition))))

    pipeline = IngestPipeline(store, listeners=[PartitionedDispatcher(send, partitions, batch_size=25)])
    records = (RawRecord(line, "vms-hn-01", str(i)) for i, line in enumerate(lines))
    stats = pipeline.ingest(records, CameraPlatformParser(), batch_size=40)
    assert stats.stored == len(lines)
    return store, results


def alert_view(store: SQLiteStore) -> set[tuple[str, str, tuple[str, ...], str]]:
    return {(a.id, a.rule_id, a.event_ids, json.dumps(dict(a.entities), sort_keys=True))
            for a in store.list_alerts(limit=100_000)}  # fmt: skip


def test_four_partitioned_workers_raise_exactly_the_alerts_of_one(tmp_path: Path) -> None:
    lines, expected_brute_force = camera_stream()
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp_path))
        one_url, four_url = redis_url[:-1] + "1", redis_url[:-1] + "2"  # separate Redis databases
        stack.enter_context(detection_workers(one_url, f"sqlite:///{tmp_path / 'one.db'}", 1))
        stack.enter_context(detection_workers(four_url, f"sqlite:///{tmp_path / 'four.db'}", 4))
        one, one_results = run_stream(lines, tmp_path / "one.db", one_url, 1)
        four, four_results = run_stream(lines, tmp_path / "four.db", four_url, 4)
        raised = [result.get(timeout=120) for _, result in [*one_results, *four_results]]
        single, spread = alert_view(one), alert_view(four)
        one.close()
        four.close()
    assert {p for p, _ in four_results} == {0, 1, 2, 3}  # the stream really is spread over four workers
    assert sum(raised) == 2 * len(single)  # every alert was raised by a task of this run
    brute = [a for a in single if a[1] == BRUTE_FORCE]
    assert len(brute) == expected_brute_force > 10
    assert {a[1] for a in single} - {BRUTE_FORCE}, "single-event rules fire too (default account, firmware)"
    assert spread == single
    print(f"{len(lines)} records, {len(single)} alerts, {len(brute)} brute-force correlations")


def test_partitioning_keeps_each_entity_in_one_partition_in_stream_order() -> None:
    events = [event(i, {"source.ip": f"10.20.5.{60 + i % 7}", "event.action": "login"}) for i in range(70)]
    events += [event(100 + i, {"host.name": f"cam-{i:04d}"}) for i in range(10)]
    parts = partition_events(events, 4)
    assert len(parts) == 4
    where: dict[str, int] = {}
    for partition, ids in parts.items():
        for eid in ids:
            key = entity_key(next(e for e in events if e.id == eid))
            assert where.setdefault(key, partition) == partition
        positions = [next(i for i, e in enumerate(events) if e.id == eid) for eid in ids]
        assert positions == sorted(positions)
    assert entity_key(events[-1]) == "host.name=cam-0009"
    assert partition_of("source.ip=10.20.5.66", 4) == partition_of("source.ip=10.20.5.66", 4)


def test_bad_partition_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITYSOC_BROKER_URL", raising=False)
    with pytest.raises(DetectionError, match="at least 1"):
        partition_of("x", 0)
    with pytest.raises(DetectionError, match="at least 1"):
        PartitionedDispatcher(lambda p, ids: None, 0)
    with pytest.raises(DetectionError, match="CITYSOC_BROKER_URL"):
        create_detection_celery(None)
