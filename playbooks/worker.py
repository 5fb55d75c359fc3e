"""Celery application for playbook runs.

Built by :func:`create_celery` (no import-time app).  Tasks are thin: they
receive ids and call :class:`playbooks.runner.Runner`.

- ``citysoc.playbooks.run(run_id)`` drives a run (start, resume after an approval);
- ``citysoc.playbooks.step(run_id, key, attempt)`` executes one step attempt, acked
  early (a lost message is recovered by the attempt's timeout, never repeated blindly);
- ``citysoc.playbooks.step_idempotent`` the same for actions declared idempotent,
  with ``acks_late``: a redelivered message may redo the attempt.

Each worker process also runs a *sweeper* thread that drives unfinished runs
when something is due (a step timeout, a retry's backoff, an approval
deadline) or changed (an approval decided in the console).  That is what
resumes runs after a worker was killed: nothing lives only in memory.

The default broker is embedded (kombu's SQLAlchemy transport on a SQLite file
under ``CITYSOC_HOME``) and needs no server; ``CITYSOC_BROKER_URL`` selects
another, e.g. ``redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from playbooks import broker as broker_mod
from playbooks.actions import REGISTRY
from playbooks.model import PlaybookLibrary, default_library_path
from playbooks.runner import Runner, StepSender
from store.base import Store
from store.registry import home, open_store

log = logging.getLogger(__name__)

RUN_TASK = "citysoc.playbooks.run"
STEP_TASK = "citysoc.playbooks.step"
STEP_IDEMPOTENT_TASK = "citysoc.playbooks.step_idempotent"
QUEUE = "playbooks"
SWEEP_INTERVAL = 0.25
#: Runs changed less than this long ago are left to the task working on them.
SWEEP_QUIET = 1.0
#: Redis redelivers unacked (acks_late) messages after this; longer than any step timeout we allow.
VISIBILITY_TIMEOUT = 7200


def default_broker_url() -> str:
    return os.environ.get("CITYSOC_BROKER_URL") or f"{broker_mod.ALIAS}+sqlite:///{home() / 'broker.sqlite'}"


def library_paths() -> list[Path]:
    extra = os.environ.get("CITYSOC_PLAYBOOKS")
    return (
        [default_library_path(), *(Path(p) for p in extra.split(os.pathsep) if p)]
        if extra
        else [default_library_path()]
    )


class _Process:
    """Per-process store, library and runner (a prefork child must not inherit its parent's connections)."""

    def __init__(self, app: Celery, store_url: str | None, dirs: list[Path], inline: bool = True) -> None:
        self.app, self.store_url, self.dirs, self.inline = app, store_url, dirs, inline
        self._pid = -1
        self._runner: Runner | None = None
        self._store: Store | None = None

    def runner(self) -> Runner:
        if self._runner is None or self._pid != os.getpid():
            self._store = open_store(self.store_url)
            library = PlaybookLibrary.load(self.dirs, REGISTRY)
            self._runner = Runner(
                self._store, library, REGISTRY, home(), send=step_sender(self.app), inline=self.inline
            )
            self._pid = os.getpid()
        return self._runner

    def close(self) -> None:
        if self._store is not None and self._pid == os.getpid():
            self._store.close()
        self._runner = self._store = None


def create_celery(
    broker_url: str | None = None, store_url: str | None = None, library_dirs: Iterable[Path] | None = None
) -> Celery:
    broker = broker_url or default_broker_url()
    app = Celery("citysoc", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=False,  # only the idempotent step task acks late
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # Redis: the visibility timeout must exceed the longest task; SQLAlchemy takes no options
        broker_transport_options={}
        if broker.startswith(broker_mod.ALIAS)
        else {"visibility_timeout": VISIBILITY_TIMEOUT},
        worker_send_task_events=False,
    )
    dirs = list(library_dirs) if library_dirs is not None else library_paths()
    process = _Process(app, store_url, dirs)

    @app.task(name=RUN_TASK, ignore_result=True)
    def run_playbook(run_id: str) -> str:
        return process.runner().run_task(run_id).value

    @app.task(name=STEP_TASK, ignore_result=True)
    def run_step(run_id: str, key: str, attempt: int) -> None:
        process.runner().step_task(run_id, key, attempt)

    @app.task(name=STEP_IDEMPOTENT_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
    def run_idempotent_step(run_id: str, key: str, attempt: int) -> None:
        process.runner().step_task(run_id, key, attempt, takeover=True)

    # the sweeper only plans and sends: a long step must not hold up the timeouts of other runs
    sweeper = Sweeper(lambda: _Process(app, store_url, dirs, inline=False).runner())

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            sweeper.start()

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        sweeper.stop()

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    app.citysoc_sweeper = sweeper  # for tests and the CLI
    return app


class Sweeper:
    """Drives unfinished runs whose state changed or whose next timeout/retry/deadline is due."""

    def __init__(
        self, make_runner: Callable[[], Runner], interval: float = SWEEP_INTERVAL, quiet: float = SWEEP_QUIET
    ) -> None:
        self.make_runner = make_runner
        self.interval = interval
        self.quiet = quiet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, tuple[datetime, datetime | None]] = {}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="citysoc-playbook-sweeper", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        runner = self.make_runner()
        while not self._stop.wait(self.interval):
            try:
                self.sweep(runner)
            except Exception:  # the sweeper must outlive a bad run or a store hiccup
                log.exception("playbook sweeper: sweep failed; retrying")

    def sweep(self, runner: Runner) -> int:
        """One pass; returns how many runs were driven."""
        now = runner.clock()
        driven = 0
        active = runner.store.active_runs()
        for run_id in list(self._seen):
            if run_id not in active:
                del self._seen[run_id]
        for run_id, updated in active.items():
            seen = self._seen.get(run_id)
            due = seen is not None and seen[1] is not None and seen[1] <= now
            changed = seen is None or seen[0] != updated
            # a run changed within the last moments has a task working on it: driving it too only contends
            if not due and not (changed and (now - updated).total_seconds() >= self.quiet):
                continue
            plan = runner.drive(run_id)
            driven += 1
            self._seen[run_id] = (runner.store.get_run(run_id).updated, plan.wake_at)
        return driven


def step_sender(app: Celery) -> StepSender:
    def send(run_id: str, key: str, attempt: int, idempotent: bool) -> None:
        task = STEP_IDEMPOTENT_TASK if idempotent else STEP_TASK
        app.send_task(task, args=[run_id, key, attempt], queue=QUEUE)

    return send


def enqueuer(app: Celery) -> Callable[[str], None]:
    """The callable the dispatcher (and approvals) use: drive a run on a worker, by id."""

    def enqueue(run_id: str) -> None:
        app.send_task(RUN_TASK, args=[run_id], queue=QUEUE)

    return enqueue
