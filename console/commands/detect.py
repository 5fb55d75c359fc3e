"""``citysoc detect-worker``: one partitioned detection worker (scale-out, see docs/scaleout.md)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("detect-worker")
@click.option("--partition", type=int, required=True, help="The partition this worker consumes (0..N-1).")
@click.option("--partitions", type=int, required=True, help="N, as CITYSOC_DETECTION_PARTITIONS on the collectors.")
@click.option("--rules", "rule_paths", multiple=True, type=click.Path(exists=True, path_type=Path))
@click.option("--loglevel", default="WARNING", show_default=True)
def command(partition: int, partitions: int, rule_paths: tuple[Path, ...], loglevel: str) -> None:
    """Evaluate the detection partition PARTITION of N; incidents start playbooks (broker: CITYSOC_BROKER_URL)."""
    from console.runtime import playbook_listeners
    from detections.distributed import queue_name
    from detections.errors import DetectionError
    from detections.worker import create_detection_celery

    if not 0 <= partition < partitions:
        raise click.UsageError(f"--partition must be within 0..{partitions - 1}")
    try:
        app = create_detection_celery(rule_paths=list(rule_paths) or None, incident_listeners=playbook_listeners)
    except DetectionError as exc:
        raise click.ClickException(str(exc)) from exc
    app.worker_main(
        [
            "worker",
            "--queues",
            queue_name(partition),
            "--pool",
            "solo",
            "--hostname",
            f"detect{partition}of{partitions}@%h",
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
