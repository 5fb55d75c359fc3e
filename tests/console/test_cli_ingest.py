"""``citysoc ingest --parse-workers``: a real CLI process parsing a log in a worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from collectors.bench import make_lines
from store.sqlite import SQLiteStore
from tests.helpers import REPO


def test_ingest_with_a_parse_worker_stores_every_line_and_dead_letters_the_bad_one(tmp_path: Path) -> None:
    lines = make_lines("web.access", 300)
    lines.insert(100, "GET / HTTP/1.1 from nowhere")
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "CITYSOC_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "console.cli", "ingest", "--format", "web.access",
                           "--parse-workers", "1", str(log)], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "received": 301, "parsed": 300, "dead_lettered": 1, "stored": 300, "duplicates": 0
    }
    store = SQLiteStore(tmp_path / "home" / "citysoc.db")
    try:
        assert store.count_events() == 300
        [letter] = store.list_dead_letters()
        assert letter.offset == str(sum(len(line) + 1 for line in lines[:100]))
        assert letter.reason.startswith("[web.access] not web.access format")
    finally:
        store.close()


def test_several_files_read_ahead_with_a_parse_worker_are_all_stored_and_checkpointed(tmp_path: Path) -> None:
    # the command reads the next file while earlier ones are parsed, and drains before it reports
    paths = []
    for seed in range(3):
        path = tmp_path / f"access-{seed}.log"
        path.write_text("\n".join(make_lines("web.access", 700, seed=seed)) + "\n", encoding="utf-8")
        paths.append(str(path))
    env = {**os.environ, "CITYSOC_HOME": str(tmp_path / "home")}

    def ingest() -> dict[str, int]:
        done = subprocess.run([sys.executable, "-m", "console.cli", "ingest", "--format", "web.access",
                               "--parse-workers", "1", *paths], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        counters: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
        return counters

    assert ingest() == {"received": 2100, "parsed": 2100, "dead_lettered": 0, "stored": 2100, "duplicates": 0}
    # every file was checkpointed at its end: a second run has nothing to read
    assert ingest() == {"received": 0, "parsed": 0, "dead_lettered": 0, "stored": 0, "duplicates": 0}
    store = SQLiteStore(tmp_path / "home" / "citysoc.db")
    try:
        assert store.count_events() == 2100
    finally:
        store.close()


def test_a_negative_worker_count_is_a_usage_error(tmp_path: Path) -> None:
    env = {**os.environ, "CITYSOC_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "console.cli", "ingest", "--format", "web.access",
                           "--parse-workers", "-1", "x.log"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "--parse-workers" in done.stderr
