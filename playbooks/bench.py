"""Benchmark: incident -> first playbook step start latency on a real worker, at 1, 10 and 100 concurrent runs.

Two readings of "N concurrent runs", both on a real ``citysoc worker`` process
(embedded broker by default, or ``--broker redis://...``).  Latency of one run
= from just before its dispatch to the moment a worker claimed its first step
(the step record's ``started``).

- **burst** (:func:`run_playbook_bench`): N incidents are matched at the same
  instant; every run of the wave is measured.  The wave of 1, measured in the
  same session, is the reference.  This is a throughput test: the last run of a
  wave of 100 waits for the 99 before it.
- **in flight** (:func:`run_inflight_bench`): N runs are active (each started
  and blocked on an approval step, as most SOC runs are) while new incidents
  arrive one at a time at a steady pace; each arrival (a *probe*) is measured.
  The reference is the probes with 1 run in flight, same session.

Targets (issue 7): p95 < 500 ms, slowdown <= 10 % at 100.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from playbooks.actions import REGISTRY
from playbooks.dispatch import PlaybookDispatcher
from playbooks.model import PlaybookLibrary, load_file
from playbooks.worker import SWEEP_QUIET, create_celery, enqueuer
from store.models import Alert, Incident, IncidentStatus, RunStatus, Severity
from store.sqlite import SQLiteStore

PLAYBOOK = """
id: bench-first-step
name: Benchmark - one timeline comment
trigger: {rules: [bench-rule]}
steps:
  - {ref: first, action: add_comment, args: {text: "benchmark {{ incident.id }}"}}
"""
#: The runs kept in flight: one step done, then waiting for an approval nobody gives during the benchmark.
HOLD_PLAYBOOK = """
id: bench-hold
name: Benchmark - a run waiting for an approval
trigger: {rules: [bench-hold-rule]}
steps:
  - {ref: first, action: add_comment, args: {text: "benchmark hold {{ incident.id }}"}}
  - {ref: hold, approval: {roles: [responder], description: benchmark hold}, timeout: 2h}
"""


class BenchError(Exception):
    """The benchmark could not run (worker did not start, runs did not finish); the message says which."""


@dataclass(frozen=True)
class Row:
    runs: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    wall_s: float


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class _Session:
    store: SQLiteStore
    dispatcher: PlaybookDispatcher
    worker: subprocess.Popen[bytes]
    counter: Iterator[int]


@contextmanager
def _session(broker_url: str | None, concurrency: int) -> Iterator[_Session]:
    """A throw-away home with both benchmark playbooks, a dispatcher and a started, warmed-up worker."""
    with tempfile.TemporaryDirectory(prefix="citysoc-bench-playbooks-") as tmp:
        home = Path(tmp)
        (home / "playbooks").mkdir()
        files = []
        for name, text in (("bench.yml", PLAYBOOK), ("hold.yml", HOLD_PLAYBOOK)):
            files.append(home / "playbooks" / name)
            files[-1].write_text(text, encoding="utf-8")
        broker = broker_url or f"citysoc-sqla+sqlite:///{home / 'broker.sqlite'}"
        env = {
            **os.environ,
            "CITYSOC_HOME": str(home),
            "CITYSOC_BROKER_URL": broker,
            "CITYSOC_PLAYBOOKS": str(home / "playbooks"),
        }
        store = SQLiteStore(home / "citysoc.db")
        library = PlaybookLibrary([load_file(f, REGISTRY) for f in files])
        dispatcher = PlaybookDispatcher(store, library, REGISTRY, enqueuer(create_celery(broker)))
        worker = subprocess.Popen(
            [sys.executable, "-m", "console.cli", "worker", "--concurrency", str(concurrency), "--loglevel", "ERROR"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the worker's banner; stdout carries the figures only
        )
        session = _Session(store, dispatcher, worker, iter(range(1_000_000)))
        try:
            _wave(session, 2, timeout=180)  # warm-up: worker start, imports, tables
            yield session
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            store.close()


def _print_rows(rows: Sequence[Row], label: str, broker_url: str | None, concurrency: int,
                print_to: Callable[[str], None]) -> None:
    reference = rows[0]
    broker = "redis" if broker_url else "embedded (SQLite)"
    print_to(f"mode: {label}; broker: {broker}; worker concurrency {concurrency}")
    print_to(f"{'runs':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p50 slowdown':>13} {'p95 slowdown':>13}")
    for row in rows:
        print_to(
            f"{row.runs:>5} {row.p50_ms:>8.1f} {row.p95_ms:>8.1f} {row.max_ms:>8.1f} "
            f"{(row.p50_ms / reference.p50_ms - 1) * 100:>12.0f}% {(row.p95_ms / reference.p95_ms - 1) * 100:>12.0f}%"
        )


def run_playbook_bench(
    levels: Sequence[int] = (1, 10, 100),
    broker_url: str | None = None,
    concurrency: int = 2,
    repeats: int = 5,
    print_to: Callable[[str], None] = print,
) -> list[Row]:
    """Burst mode in a throw-away home; returns one row per level (N=1 repeated ``repeats`` times)."""
    with _session(broker_url, concurrency) as session:
        rows = []
        for n in levels:
            samples: list[float] = []
            started = time.perf_counter()
            for _ in range(repeats if n == 1 else 1):
                samples += _wave(session, n)
            wall = time.perf_counter() - started
            rows.append(Row(n, statistics.median(samples), _percentile(samples, 0.95), max(samples), wall))
    _print_rows(rows, "burst (N runs dispatched at the same instant)", broker_url, concurrency, print_to)
    print_to("targets: p95 < 500 ms; slowdown <= 10 % at 100 concurrent runs (reference: 1 run, same session)")
    return rows


def run_inflight_bench(
    levels: Sequence[int] = (1, 10, 100),
    broker_url: str | None = None,
    concurrency: int = 2,
    probes: int = 40,
    gap: float = 0.2,
    print_to: Callable[[str], None] = print,
) -> list[Row]:
    """In-flight mode in a throw-away home; returns one row per level (``runs`` = runs in flight).

    Levels are reached in increasing order by adding held runs (each waits on an
    approval step, so it stays active for the whole benchmark); at each level
    ``probes`` incidents arrive one at a time, the next ``gap`` seconds after the
    previous probe's run finished, so probes never overlap.
    """
    if list(levels) != sorted(levels) or not levels or levels[0] < 1:
        raise BenchError(f"in-flight levels must be increasing and >= 1, got {list(levels)}")
    with _session(broker_url, concurrency) as session:
        rows = []
        held = 0
        for n in levels:
            _hold(session, n - held)
            held = n
            # let the sweepers see the held runs settle, as they would in a steady state
            time.sleep(2 * SWEEP_QUIET)
            samples: list[float] = []
            started = time.perf_counter()
            for _ in range(probes):
                samples += _wave(session, 1)
                time.sleep(gap)
            wall = time.perf_counter() - started
            active = len(session.store.active_runs())
            if active != n:
                raise BenchError(f"{active} runs were active after the probes at level {n}, expected {n}")
            rows.append(Row(n, statistics.median(samples), _percentile(samples, 0.95), max(samples), wall))
    _print_rows(rows, f"in flight (N active runs waiting on an approval; {probes} probes, one at a time)",
                broker_url, concurrency, print_to)
    print_to("targets: p95 < 500 ms; slowdown <= 10 % with 100 runs in flight (reference: 1 in flight, same session)")
    return rows


def _hold(session: _Session, n: int, timeout: float = 180) -> None:
    """Start ``n`` more held runs and wait until each is waiting on its approval step."""
    run_ids = []
    now = datetime.now(timezone.utc)
    for _ in range(n):
        incident, alert = _incident(session, now, "bench-hold-rule")
        run_ids += session.dispatcher.dispatch(incident, alert)
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending:
        _check(session, deadline, f"{len(pending)} of {n} held runs did not reach their approval step")
        for run_id in list(pending):
            run = session.store.get_run(run_id)
            hold = next((s for s in run.steps if s.ref == "hold"), None)
            if run.status is RunStatus.WAITING and hold is not None and hold.started is not None:
                pending.discard(run_id)
            elif run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
                raise BenchError(f"held run {run_id} ended ({run.status.value}) instead of waiting: {run.error}")
        time.sleep(0.05)


def _incident(session: _Session, now: datetime, rule: str) -> tuple[Incident, Alert]:
    i = next(session.counter)
    incident = session.store.create_incident(
        Incident(f"INC-B{i}", "bench", Severity.HIGH, IncidentStatus.NEW, now, now, now, now, f"bench:{i}"),
        actor="bench",
    )
    return incident, Alert(f"AL-B{i}", rule, "bench", Severity.HIGH, now, now, ())


def _check(session: _Session, deadline: float, late: str) -> None:
    if session.worker.poll() is not None:
        raise BenchError(f"the worker exited with status {session.worker.returncode}")
    if time.monotonic() > deadline:
        raise BenchError(late)


def _wave(session: _Session, n: int, timeout: float = 120) -> list[float]:
    """Match ``n`` incidents at once; returns each run's incident -> first-step-start latency in ms."""
    now = datetime.now(timezone.utc)
    incidents = [_incident(session, now, "bench-rule") for _ in range(n)]
    t0: dict[str, datetime] = {}
    for incident, alert in incidents:
        at = datetime.now(timezone.utc)
        for run_id in session.dispatcher.dispatch(incident, alert):
            t0[run_id] = at
    deadline = time.monotonic() + timeout
    latencies: dict[str, float] = {}
    while len(latencies) < len(t0):
        _check(session, deadline, f"{len(t0) - len(latencies)} of {len(t0)} runs did not start within {timeout:.0f} s")
        for run_id in t0.keys() - latencies.keys():
            run = session.store.get_run(run_id)
            first = next((s for s in run.steps if s.ref == "first"), None)
            if run.status is RunStatus.SUCCEEDED and first is not None and first.started is not None:
                latencies[run_id] = (first.started - t0[run_id]).total_seconds() * 1000
        time.sleep(0.02)
    return list(latencies.values())
