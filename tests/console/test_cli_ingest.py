"""``citysoc ingest --parse-workers``: a real CLI process parsing a log in a worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
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


def _ingest(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CITYSOC_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "console.cli", "ingest", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_one_process_reads_files_of_several_formats_given_as_sources(tmp_path: Path) -> None:
    paths = {}
    for fmt, count in (("web.access", 120), ("zeek", 80), ("suricata.eve", 50)):
        paths[fmt] = tmp_path / f"{fmt}.log"
        paths[fmt].write_text("\n".join(make_lines(fmt, count)) + "\n", encoding="utf-8")
    done = _ingest(["--format", "web.access", str(paths["web.access"]),
                    "--source", "zeek", str(paths["zeek"]), "--source", "suricata.eve", str(paths["suricata.eve"])],
                   tmp_path / "home")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "received": 250, "parsed": 250, "dead_lettered": 0, "stored": 250, "duplicates": 0
    }
    store = SQLiteStore(tmp_path / "home" / "citysoc.db")
    try:
        per_source = Counter(e.fields["labels.source"] for e in store.search_events(limit=1000))
        assert per_source == {f"file:{paths['web.access']}": 120, f"file:{paths['zeek']}": 80,
                              f"file:{paths['suricata.eve']}": 50}  # fmt: skip
    finally:
        store.close()
    again = _ingest(["--source", "zeek", str(paths["zeek"])], tmp_path / "home")  # checkpointed at its end
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["received"] == 0


def test_a_bad_ingest_call_is_a_usage_error_naming_the_problem(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n", encoding="utf-8")
    for args, message in (
        (["--source", "bogus", str(log)], "no parser named 'bogus' (known: auditd,"),
        (["--format", "bogus", str(log)], "no parser named 'bogus'"),
        ([str(log)], "--format is required for FILES and --udp/--tcp"),
        ([], "--format or --source is required"),
    ):
        done = _ingest(args, tmp_path / "home")
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "home" / "citysoc.db").exists()  # refused before anything was opened
