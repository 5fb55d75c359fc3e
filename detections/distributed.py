"""Partitioning the detection stream over N workers so correlation state stays consistent.

A correlation counts events per group (``source.ip``, ``host.name`` ...) inside one
process's memory.  Spreading events over workers at random would split a group's
events between processes and no worker would ever see five failed logins from
one address.  So every stored event is routed by its *entity key* — the first of
:data:`PARTITION_FIELDS` it carries, the same precedence incidents use to group
alerts — through a stable hash to one of N partitions, and each partition has
exactly one consumer (``detections.worker``, concurrency 1, prefetch 1): every
event of an entity is evaluated by the same process in stream order.

:class:`PartitionedDispatcher` is the :class:`store.StoredEventListener` the
collectors use instead of an in-process engine; it sends only event ids (the
worker reads the events from the store, after the commit that stored them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from detections.errors import DetectionError
from detections.incidents import GROUP_FIELDS
from store.event import Event

#: entity fields that choose the partition, strongest first (the incident grouping order)
PARTITION_FIELDS: tuple[str, ...] = GROUP_FIELDS
QUEUE_PREFIX = "detections"

SendBatch = Callable[[int, list[str]], None]


def entity_key(event: Event) -> str:
    """``field=value`` of the event's strongest entity, or ``dataset=...`` when it has none."""
    for name in PARTITION_FIELDS:
        value = event.get(name)
        if isinstance(value, tuple):
            value = value[0] if value else None
        if value is not None:
            return f"{name}={value}"
    return f"event.dataset={event.get('event.dataset', '')}"


def partition_of(key: str, partitions: int) -> int:
    """Stable across processes and restarts (Python's ``hash`` is salted per process)."""
    if partitions < 1:
        raise DetectionError(f"the number of detection partitions must be at least 1, got {partitions}")
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def queue_name(partition: int) -> str:
    return f"{QUEUE_PREFIX}.{partition}"


def partition_events(events: Sequence[Event], partitions: int) -> dict[int, list[str]]:
    """Event ids per partition, keeping the stream order inside each partition."""
    out: dict[int, list[str]] = {}
    for event in events:
        out.setdefault(partition_of(entity_key(event), partitions), []).append(event.id)
    return out


class PartitionedDispatcher:
    """Sends the ids of newly stored events to the detection worker of their partition."""

    def __init__(self, send: SendBatch, partitions: int, batch_size: int = 500) -> None:
        if partitions < 1:
            raise DetectionError(f"the number of detection partitions must be at least 1, got {partitions}")
        if batch_size < 1:
            raise DetectionError(f"batch_size must be at least 1, got {batch_size}")
        self.send = send
        self.partitions = partitions
        self.batch_size = batch_size

    def on_events_stored(self, events: Sequence[Event]) -> None:
        for partition, ids in partition_events(events, self.partitions).items():
            for i in range(0, len(ids), self.batch_size):
                self.send(partition, ids[i : i + self.batch_size])
