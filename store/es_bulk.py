"""Bulk ingest for the search-engine store: batching, retries with back-off, back-pressure.

Pure logic around one ``send`` callable (the client's ``_bulk`` call), so it is
tested without a cluster:

* :func:`batches` cuts operations by count and by serialised size, so one request
  never exceeds the cluster's ``http.max_content_length``.
* :class:`Backoff` gives the exponential delays (with optional jitter) between tries.
* :class:`BulkIngester` sends a batch, keeps the items that succeeded, treats a
  ``409`` on a ``create`` as "stored already" (idempotent ingest), retries only the
  items the cluster rejected for load (``429``, ``502``-``504``) and gives up with
  :class:`BackPressure` when the cluster stays overloaded, so the caller (the
  collector) slows down or spools instead of dropping events.  Any other item
  error is permanent and reported with the document id and the cluster's reason.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from store.errors import StoreError

#: item statuses worth retrying: the cluster is busy, not the document bad
RETRYABLE = frozenset({429, 502, 503, 504})


class BackPressure(StoreError):
    """The cluster kept rejecting writes for load after every retry; slow down and try again later."""


@dataclass(frozen=True)
class BulkOp:
    """One ``create`` (or ``index``) action with its document."""

    index: str
    doc_id: str
    document: Mapping[str, Any]
    op: str = "create"

    def lines(self) -> list[dict[str, Any]]:
        return [{self.op: {"_index": self.index, "_id": self.doc_id}}, dict(self.document)]

    def size(self) -> int:
        return sum(
            len(json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode()) + 1 for line in self.lines()
        )


def batches(ops: Iterable[BulkOp], max_ops: int = 1000, max_bytes: int = 5_000_000) -> Iterator[list[BulkOp]]:
    """Consecutive batches of at most ``max_ops`` operations and ``max_bytes`` bytes (a lone bigger op goes alone)."""
    if max_ops < 1 or max_bytes < 1:
        raise ValueError("batches: max_ops and max_bytes must be positive")
    batch: list[BulkOp] = []
    size = 0
    for op in ops:
        op_size = op.size()
        if batch and (len(batch) >= max_ops or size + op_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(op)
        size += op_size
    if batch:
        yield batch


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off: ``initial * factor**n`` capped at ``maximum``, ``retries`` times."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    retries: int = 6
    jitter: float = 0.1  # fraction of the delay added at random, so many workers do not retry in step

    def __post_init__(self) -> None:
        if self.initial < 0 or self.factor < 1 or self.maximum < self.initial or self.retries < 0:
            raise ValueError(f"invalid back-off policy {self!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"back-off jitter must be within 0..1, got {self.jitter}")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        rng = rng or random.Random()  # noqa: S311 - timing jitter, not security
        for n in range(self.retries):
            base = min(self.maximum, self.initial * self.factor**n)
            yield base + base * self.jitter * rng.random()


@dataclass(frozen=True)
class ItemFailure:
    doc_id: str
    index: str
    status: int
    reason: str


@dataclass
class BulkResult:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[ItemFailure] = field(default_factory=list)
    retries: int = 0


def _reason(error: Any) -> str:
    if isinstance(error, Mapping):
        kind = error.get("type", "error")
        reason = error.get("reason", "")
        cause = error.get("caused_by")
        text = f"{kind}: {reason}"
        if isinstance(cause, Mapping):
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return text
    return str(error)


SendBulk = Callable[[list[dict[str, Any]]], Mapping[str, Any]]


class BulkIngester:
    """Sends operations in batches through ``send`` (returns the ``_bulk`` response body)."""

    def __init__(
        self,
        send: SendBulk,
        backoff: Backoff | None = None,
        max_ops: int = 1000,
        max_bytes: int = 5_000_000,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.send = send
        self.backoff = backoff or Backoff()
        self.max_ops = max_ops
        self.max_bytes = max_bytes
        self.sleep = sleep
        self.rng = rng

    def ingest(self, ops: Sequence[BulkOp]) -> BulkResult:
        result = BulkResult()
        for batch in batches(ops, self.max_ops, self.max_bytes):
            self._send_batch(batch, result)
        return result

    def _send_batch(self, batch: list[BulkOp], result: BulkResult) -> None:
        pending = batch
        delays = self.backoff.delays(self.rng)
        while True:
            lines = [line for op in pending for line in op.lines()]
            response = self.send(lines)
            items = response.get("items")
            if not isinstance(items, list) or len(items) != len(pending):
                raise StoreError(f"bulk response has {len(items or [])} items for {len(pending)} operations")
            retry: list[BulkOp] = []
            for op, item in zip(pending, items, strict=True):
                body = next(iter(item.values())) if isinstance(item, Mapping) and item else {}
                status = int(body.get("status", 0))
                if 200 <= status < 300:
                    result.created.append(op.doc_id)
                elif status == 409 and op.op == "create":
                    result.existing.append(op.doc_id)  # stored before: idempotent ingest
                elif status in RETRYABLE:
                    retry.append(op)
                else:
                    result.failed.append(ItemFailure(op.doc_id, op.index, status, _reason(body.get("error"))))
            if not retry:
                return
            delay = next(delays, None)
            if delay is None:
                raise BackPressure(
                    f"the cluster rejected {len(retry)} of {len(batch)} documents for load after "
                    f"{self.backoff.retries} retries (first: {retry[0].index}/{retry[0].doc_id}); "
                    "slow the collectors down or add data nodes"
                )
            result.retries += 1
            self.sleep(delay)
            pending = retry
