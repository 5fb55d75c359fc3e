"""Crash test: 100k events pushed over HTTP ingest, the collector ``kill -9``-ed five times.

The client resends every batch that was not acknowledged (at-least-once);
the spool keeps what was acknowledged; stable ids keep the store free of
duplicates.  At the end the store holds exactly the 100k distinct events.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from collectors.transports.http_ingest import TokenStore
from store.event import stable_id
from store.sqlite import SQLiteStore
from tests.helpers import REPO
from tests.services import free_port, wait_port

TOTAL = 100_000
BATCH = 2_000
KILLS = 5
STALL_SECONDS = 15


def _body(start: int) -> bytes:
    lines = []
    for i in range(start, min(start + BATCH, TOTAL)):
        doc = {"@timestamp": f"2026-11-21T08:{(i // 6000) % 60:02d}:{(i // 100) % 60:02d}.{i % 100:02d}0000Z",
               "event": {"id": stable_id("crash", str(i)), "action": "telemetry", "sequence": i},
               "iot": {"device": {"id": f"aq-{i % 500:03d}"}}, "source": {"ip": f"10.20.{i % 250}.{i % 200 + 1}"}}
        lines.append(json.dumps(doc))
    return ("\n".join(lines) + "\n").encode()


def _post(port: int, token: str, body: bytes) -> bool:
    """True when the batch was acknowledged; False on any failure (the collector died)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/ingest", body, {"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        payload = json.loads(response.read())
        conn.close()
    except (OSError, http.client.HTTPException, ValueError):
        return False
    assert response.status in (200, 503), payload
    if response.status == 200:
        assert payload["rejected"] == [], payload["rejected"][:3]
    return response.status == 200


def _start(state: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.collectors.crash_child", str(state), str(port)], cwd=REPO)
    wait_port(port)
    return proc


def test_kill_9_five_times_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    token = TokenStore(tmp_path / "tokens.json").issue("ioc", "ecs.json")
    port = free_port()
    batches = list(range(0, TOTAL, BATCH))
    kill_after = sorted(rng.sample(range(1, len(batches)), KILLS))  # acknowledged batches before each kill
    proc = _start(tmp_path, port)
    try:
        acked = 0
        kills = 0
        index = 0
        while index < len(batches):
            if kills < KILLS and acked == kill_after[kills]:
                time.sleep(rng.uniform(0.0, 0.3))  # land the kill while the drainer is storing
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = _start(tmp_path, port)
            if _post(port, token, _body(batches[index])):
                acked += 1
                index += 1
            else:
                time.sleep(0.1)  # not acknowledged: send the same batch again
        assert kills == KILLS
        store = SQLiteStore(tmp_path / "citysoc.db")
        try:
            # the drainer may still be storing: wait while it makes progress (the shared CI cores can be slow)
            count, stalled_since = store.count_events(), time.monotonic()
            while count < TOTAL and time.monotonic() - stalled_since < STALL_SECONDS:
                time.sleep(0.2)
                now_count = store.count_events()
                if now_count != count:
                    count, stalled_since = now_count, time.monotonic()
            proc.send_signal(signal.SIGKILL)  # a last kill after everything was acknowledged
            proc.wait()
            assert store.count_events() == TOTAL
            ids = {event.id for event in store.iter_events()}
            assert ids == {stable_id("crash", str(i)) for i in range(TOTAL)}
            assert store.count_dead_letters() == 0
        finally:
            store.close()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
