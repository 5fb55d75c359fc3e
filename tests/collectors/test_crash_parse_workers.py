"""Crash test with parse workers: a tailed log, the collector ``kill -9``-ed while its workers parse.

The collector checkpoints only after a batch is stored, so every kill re-reads from the
last stored batch; stable ids keep the store free of duplicates.  At the end the store
holds exactly one event per line, and the parse workers of every killed collector are gone.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from collectors.base import RawRecord, get_parser
from collectors.bench import make_lines
from store.sqlite import SQLiteStore
from tests.helpers import REPO

TOTAL = 20_000
CHUNK = 2_000
KILLS = 3
STALL_SECONDS = 15


def _start(state: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.collectors.crash_files_child", str(state), str(log), "1"],
                            cwd=REPO)


def _wait_stored(store: SQLiteStore, at_least: int, proc: subprocess.Popen[bytes]) -> int:
    """Wait until the store holds ``at_least`` events, while it makes progress."""
    count, stalled_since = store.count_events(), time.monotonic()
    while count < at_least and time.monotonic() - stalled_since < STALL_SECONDS:
        assert proc.poll() is None, f"the collector exited with {proc.returncode}"
        time.sleep(0.05)
        now_count = store.count_events()
        if now_count != count:
            count, stalled_since = now_count, time.monotonic()
    return count


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # an orphan that exited but was not reaped yet is gone too


def test_kill_9_with_parse_workers_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    lines = make_lines("web.access", TOTAL, seed=5)
    log = tmp_path / "access.log"
    log.touch()
    store = SQLiteStore(tmp_path / "citysoc.db")
    proc = _start(tmp_path, log)
    try:
        kills = 0
        for first in range(0, TOTAL, CHUNK):
            with log.open("a", encoding="utf-8") as out:
                out.write("\n".join(lines[first : first + CHUNK]) + "\n")
            if kills < KILLS and first // CHUNK in (1, 4, 7):
                # land the kill while the workers parse and the collector stores this chunk
                _wait_stored(store, first + rng.randrange(CHUNK // 4, CHUNK // 2), proc)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = _start(tmp_path, log)
        assert kills == KILLS
        assert _wait_stored(store, TOTAL, proc) == TOTAL
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        source = f"file:{log}"
        parser = get_parser("web.access")
        expected, offset = set(), 0
        for line in lines:
            expected.update(e.id for e in parser.parse(RawRecord(line, source, str(offset))))
            offset += len(line.encode()) + 1
        assert store.count_events() == TOTAL
        assert {event.id for event in store.iter_events()} == expected
        assert store.count_dead_letters() == 0
        pid_files = sorted(tmp_path.glob("workers-*.txt"))
        assert len(pid_files) == KILLS + 1
        workers = [int(pid) for path in pid_files for pid in path.read_text().split()]
        assert len(workers) == KILLS + 1
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)  # orphaned workers notice within a second that their collector is gone
        assert not any(_alive(pid) for pid in workers)
    finally:
        store.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
