"""Celery application for playbook runs.

Built by :func:`create_celery` (no import-time app).  The one task is thin:
it receives a run id, opens the store and calls :func:`playbooks.engine.execute_run`.
The default broker is embedded (kombu's SQLAlchemy transport on a SQLite
file under ``CITYSOC_HOME``) and needs no server; ``CITYSOC_BROKER_URL``
selects another, e.g. ``redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from celery import Celery

from playbooks import broker as broker_mod
from playbooks.actions import REGISTRY
from playbooks.engine import execute_run
from playbooks.model import PlaybookLibrary, default_library_path
from store.registry import home, open_store

RUN_TASK = "citysoc.playbooks.run"
QUEUE = "playbooks"


def default_broker_url() -> str:
    return os.environ.get("CITYSOC_BROKER_URL") or f"{broker_mod.ALIAS}+sqlite:///{home() / 'broker.sqlite'}"


def library_paths() -> list[Path]:
    extra = os.environ.get("CITYSOC_PLAYBOOKS")
    return (
        [default_library_path(), *(Path(p) for p in extra.split(os.pathsep) if p)]
        if extra
        else [default_library_path()]
    )


def create_celery(
    broker_url: str | None = None, store_url: str | None = None, library_dirs: Iterable[Path] | None = None
) -> Celery:
    broker = broker_url or default_broker_url()
    app = Celery("citysoc", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=False,  # only idempotent tasks ack late; runs resume by step records instead
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # Redis: the visibility timeout must exceed the longest task; SQLAlchemy takes no options
        broker_transport_options={} if broker.startswith(broker_mod.ALIAS) else {"visibility_timeout": 3600},
        worker_send_task_events=False,
    )
    dirs = list(library_dirs) if library_dirs is not None else library_paths()

    @app.task(name=RUN_TASK, bind=True, ignore_result=True)
    def run_playbook(self: object, run_id: str) -> str:
        library = PlaybookLibrary.load(dirs, REGISTRY)
        with open_store(store_url) as store:
            run = execute_run(store, run_id, library, REGISTRY, home())
        return run.status.value

    return app


def enqueuer(app: Celery) -> Callable[[str], None]:
    """The callable the dispatcher uses: send the run id by task name."""

    def enqueue(run_id: str) -> None:
        app.send_task(RUN_TASK, args=[run_id], queue=QUEUE)

    return enqueue
