"""``citysoc collect``: a real collector process with HTTP ingest, privacy policy and metrics."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from store.sqlite import SQLiteStore
from tests.helpers import REPO
from tests.services import free_port, wait_port

CAMERA = REPO / "tests" / "data" / "collectors" / "camera.jsonl"


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "console.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_http_collector_with_privacy_and_metrics(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "privacy.json").write_text(json.dumps({"sources": [{"source": "http:vms-*"}]}))
    env = {**os.environ, "CITYSOC_HOME": str(home)}
    token = _cli(env, "collect", "token", "vms-hn-01", "--format", "camera.platform").strip()
    assert len(token) > 30 and token not in (home / "ingest-tokens.json").read_text()
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "collect", "http", "--port", str(port),
                             "--metrics-port", str(metrics_port)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, timeout=60)
        wait_port(metrics_port, timeout=20)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/ingest", CAMERA.read_bytes(), {"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        reply = json.loads(response.read())
        conn.close()
        assert response.status == 200 and reply["accepted"] == 9 and len(reply["rejected"]) == 5
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            text = _cli(env, "collect", "metrics", "--port", str(metrics_port))
            if 'citysoc_pipeline_records_total{stage="stored"} 9' in text:
                break
            time.sleep(0.3)
        assert 'citysoc_collector_records_total{source="http:vms-hn-01",stage="spooled"} 9' in text
        assert 'citysoc_collector_records_total{source="http:vms-hn-01",stage="rejected"} 5' in text
        assert 'citysoc_pipeline_records_total{stage="stored"} 9' in text
        assert 'citysoc_pipeline_records_total{stage="dead_lettered"} 5' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    store = SQLiteStore(home / "citysoc.db")
    try:
        users = {e.get("user.name") for e in store.iter_events()}
        assert users and all(u is None or u.startswith("ps:") for u in users)
        assert all(e.get("event.original") is None for e in store.iter_events())
    finally:
        store.close()
