"""Celery application for distributed detection workers.

Built by :func:`create_detection_celery` (no import-time app).  The one task is thin:
it receives the ids of stored events of one partition, reads them from the store
and runs them through this process's :class:`DetectionEngine`.  The engine (and so
the correlation windows) lives as long as the worker process, which is why each
partition queue ``detections.<n>`` must have exactly one consumer, started with
the solo pool (the engine runs in the process that consumes the queue)::

    python -m detections.worker --partition 0 --partitions 4   # one per partition

Tasks are acknowledged early (``acks_late`` off): evaluating an event twice is
harmless for single-event alerts (their ids are stable) but would count it twice
in a correlation window.  ``CITYSOC_BROKER_URL`` (Redis or RabbitMQ) and
``CITYSOC_STORE_URL`` select the broker and the store.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from celery import Celery

from detections.distributed import PartitionedDispatcher, queue_name
from detections.engine import DetectionEngine
from detections.errors import DetectionError
from detections.incidents import IncidentListener, IncidentManager
from detections.pack import default_rule_paths, load_rules
from detections.rule_state import RuleGate
from store.base import Store
from store.registry import open_store

EVALUATE_TASK = "citysoc.detections.evaluate"

log = logging.getLogger(__name__)

ListenerFactory = Callable[[Store], Sequence[IncidentListener]]


def create_detection_celery(
    broker_url: str | None = None,
    store_url: str | None = None,
    rule_paths: Sequence[Path] | None = None,
    result_backend: str | None = None,
    incident_listeners: ListenerFactory | None = None,
) -> Celery:
    """The detection app; ``incident_listeners`` lets the composition root add the playbook dispatcher."""
    broker = broker_url or os.environ.get("CITYSOC_BROKER_URL")
    if not broker:
        raise DetectionError(
            "distributed detection needs a shared broker: set CITYSOC_BROKER_URL (redis://... or amqp://...)"
        )
    app = Celery("citysoc-detections", broker=broker, backend=result_backend, set_as_current=False)
    app.conf.update(
        task_acks_late=False,  # see the module docstring: re-evaluation would double-count correlations
        task_ignore_result=result_backend is None,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_send_task_events=False,
    )
    paths = list(rule_paths) if rule_paths is not None else default_rule_paths()
    engines: dict[str, DetectionEngine] = {}  # one per worker process, built on the first task

    def engine() -> DetectionEngine:
        if "engine" not in engines:
            store = open_store(store_url)
            rules = load_rules(paths)
            listeners = list(incident_listeners(store)) if incident_listeners else []
            incidents = IncidentManager(store, listeners=listeners)
            engines["engine"] = DetectionEngine(
                store, rules.ruleset, incidents, rules.correlator, rules.names, gate=RuleGate()
            )
        return engines["engine"]

    @app.task(name=EVALUATE_TASK, ignore_result=result_backend is None)
    def evaluate(event_ids: list[str]) -> int:
        current = engine()
        events = current.store.get_events(event_ids)
        if len(events) != len(set(event_ids)):
            found = {e.id for e in events}
            missing = [i for i in event_ids if i not in found]
            log.warning("detection batch: %d event id(s) not in the store, first %s", len(missing), missing[0])
        alerts = 0
        for event in events:
            alerts += len(current.evaluate(event))
        return alerts

    return app


def dispatcher(app: Celery, partitions: int, batch_size: int = 500) -> PartitionedDispatcher:
    """The stored-event listener the collectors use: ids go to the queue of their partition."""

    def send(partition: int, ids: list[str]) -> None:
        app.send_task(EVALUATE_TASK, args=[ids], queue=queue_name(partition))

    return PartitionedDispatcher(send, partitions, batch_size)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m detections.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--partition", type=int, required=True, help="the partition this worker consumes")
    parser.add_argument("--partitions", type=int, required=True, help="the number of partitions of the stream")
    parser.add_argument("--broker", default=None, help="broker URL (default: CITYSOC_BROKER_URL)")
    parser.add_argument("--store", default=None, help="store URL (default: CITYSOC_STORE_URL)")
    parser.add_argument(
        "--result-backend", default=None, help="keep task results here (e.g. redis://...), for callers that wait"
    )
    parser.add_argument("--rules", action="append", type=Path, help="rule directory or file (repeatable)")
    parser.add_argument("--loglevel", default="WARNING")
    args = parser.parse_args(argv)
    if not 0 <= args.partition < args.partitions:
        parser.error(f"--partition must be within 0..{args.partitions - 1}")
    app = create_detection_celery(args.broker, args.store, args.rules, args.result_backend)
    app.worker_main(
        [
            "worker",
            "--queues",
            queue_name(args.partition),
            "--pool",
            "solo",  # the engine and its correlation windows live in this process
            "--hostname",
            f"detect{args.partition}of{args.partitions}@%h",
            "--loglevel",
            args.loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":
    main()
