"""Benchmark: the figures behind the sizing table in ``docs/deploy.md``.

Run ``.venv/bin/python -m bench.scaleout [--events N] [--workers 4]``.  Prints, for a
camera-platform stream with brute-force bursts (the built-in rule pack, correlations
included):

* client-side cost of the search-engine ingest: events/s turned into ``_bulk`` NDJSON
  on one core, against the embedded store's ``put_events`` measured in the same run;
* detection: events/s of one in-process engine (the reference), then end to end
  through Redis with 1 and with N partitioned ``detections.worker`` processes.

Nothing here talks to Elasticsearch: cluster-side indexing rates in the docs are
estimates and marked as such.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from detections.distributed import PartitionedDispatcher, queue_name
from detections.engine import DetectionEngine
from detections.incidents import IncidentManager
from detections.pack import default_rule_paths, load_rules
from detections.worker import EVALUATE_TASK, create_detection_celery
from store.es_bulk import BulkOp
from store.es_mapping import stream_name
from store.event import Event, Value, stable_id
from store.sqlite import SQLiteStore

T0 = datetime(2026, 11, 21, 8, 0, 0, tzinfo=timezone.utc)


def stream(n: int, seed: int = 5) -> list[Event]:
    """Camera logins: 5 % of sources brute-force in bursts, the rest are operators and devices."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        attacker = rng.random() < 0.3
        src = f"10.20.{rng.randrange(4)}.{rng.randrange(1, 60)}" if attacker else f"10.10.{rng.randrange(8)}.{i % 250}"
        fields: dict[str, Value] = {
            "event.dataset": "camera.platform",
            "event.kind": "event",
            "event.category": ("authentication",),
            "event.action": "login",
            "event.outcome": "failure" if attacker or rng.random() < 0.05 else "success",
            "user.name": rng.choice(["admin", "root"]) if attacker else f"op.{i % 40}",
            "source.ip": src,
            "destination.ip": f"10.20.1.{rng.randrange(1, 250)}",
            "iot.device.id": f"cam-{rng.randrange(5000):04d}",
            "host.name": f"cam-{rng.randrange(5000):04d}",
            "message": "web login",
        }
        out.append(Event(stable_id("bench", str(i)), T0 + timedelta(milliseconds=50 * i), fields))
    return out


def bulk_rate(events: list[Event]) -> float:
    start = time.perf_counter()
    lines: list[str] = []
    for event in events:
        op = BulkOp(stream_name("citysoc", str(event.get("event.dataset")), None), event.id, event.to_document())
        lines.extend(json.dumps(line, ensure_ascii=False) for line in op.lines())
    "\n".join(lines).encode()
    return len(events) / (time.perf_counter() - start)


def sqlite_rate(events: list[Event], tmp: Path) -> float:
    store = SQLiteStore(tmp / "bulkref.db")
    start = time.perf_counter()
    for i in range(0, len(events), 500):
        store.put_events(events[i : i + 500])
    rate = len(events) / (time.perf_counter() - start)
    store.close()
    return rate


def engine_rate(events: list[Event], tmp: Path) -> tuple[float, int]:
    store = SQLiteStore(tmp / "engine.db")
    store.put_events(events)
    rules = load_rules(default_rule_paths())
    engine = DetectionEngine(store, rules.ruleset, IncidentManager(store), rules.correlator, rules.names)
    start = time.perf_counter()
    for event in events:
        engine.evaluate(event)
    rate = len(events) / (time.perf_counter() - start)
    alerts = store.count_alerts()
    store.close()
    return rate, alerts


@contextmanager
def redis(tmp: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def distributed_rate(events: list[Event], tmp: Path, redis_url: str, workers: int) -> tuple[float, int]:
    db = tmp / f"dist{workers}.db"
    url = f"{redis_url}/{workers}"
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "detections.worker", "--partition", str(p), "--partitions", str(workers)),
                *("--broker", url, "--store", f"sqlite:///{db}", "--result-backend", url),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in range(workers)
    ]
    try:
        store = SQLiteStore(db)
        store.put_events(events)
        app = create_detection_celery(url, f"sqlite:///{db}", result_backend=url)
        # warm-up: each worker loads its rules on its first task
        for p in range(workers):
            app.send_task(EVALUATE_TASK, args=[[]], queue=queue_name(p)).get(timeout=120)
        results = []

        def send(partition: int, ids: list[str]) -> None:
            results.append(app.send_task(EVALUATE_TASK, args=[ids], queue=queue_name(partition)))

        dispatcher = PartitionedDispatcher(send, workers, batch_size=200)
        start = time.perf_counter()
        for i in range(0, len(events), 1000):
            dispatcher.on_events_stored(events[i : i + 1000])
        for result in results:
            result.get(timeout=600)
        rate = len(events) / (time.perf_counter() - start)
        alerts = store.count_alerts()
        store.close()
        return rate, alerts
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    events = stream(args.events)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bulk, ref = bulk_rate(events), sqlite_rate(events, tmp)
        print(f"ingest, one core: _bulk NDJSON {bulk:,.0f} ev/s; reference embedded put_events {ref:,.0f} ev/s")
        eng, eng_alerts = engine_rate(events, tmp)
        print(f"detection, in-process engine (reference): {eng:,.0f} ev/s, {eng_alerts} alerts")
        with redis(tmp) as url:
            for workers in (1, args.workers):
                rate, alerts = distributed_rate(events, tmp, url, workers)
                same = "same alerts" if alerts == eng_alerts else f"ALERTS DIFFER ({alerts} vs {eng_alerts})"
                print(
                    f"detection, {workers} worker(s) via Redis: {rate:,.0f} ev/s ({rate / eng:.2f}x reference), {same}"
                )


if __name__ == "__main__":
    main()
