"""Bulk batching, retry/back-off and back-pressure of the search-engine ingest, without a cluster.

``send`` here plays the cluster's ``_bulk`` response format for item statuses; the
cluster itself is exercised by the contract suite when a URL is configured.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

from store.errors import StoreError
from store.es_bulk import Backoff, BackPressure, BulkIngester, BulkOp, batches


def _ops(n: int, size: int = 10) -> list[BulkOp]:
    return [BulkOp("citysoc-events-x-sl1", f"id{i}", {"message": "x" * size}) for i in range(n)]


def test_batches_cut_by_count_and_size() -> None:
    ops = _ops(10)
    assert [len(b) for b in batches(ops, max_ops=4)] == [4, 4, 2]
    one = ops[0].size()
    assert [len(b) for b in batches(ops, max_ops=100, max_bytes=one * 3)] == [3, 3, 3, 1]
    big = _ops(1, size=10_000)
    assert [len(b) for b in batches([*big, *ops[:2]], max_bytes=500)] == [1, 2]  # a lone big op goes alone
    with pytest.raises(ValueError, match="positive"):
        list(batches(ops, max_ops=0))


def test_backoff_grows_exponentially_to_a_cap() -> None:
    assert list(Backoff(initial=0.5, factor=2, maximum=3, retries=5, jitter=0).delays()) == [0.5, 1, 2, 3, 3]
    jittered = list(Backoff(initial=1, retries=3, jitter=0.5).delays(random.Random(7)))
    assert all(b <= d <= b * 1.5 for d, b in zip(jittered, [1, 2, 4], strict=True))
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=2)


class Cluster:
    """Answers each _bulk call with the item statuses scripted for each document id."""

    def __init__(self, script: Mapping[str, list[int]]) -> None:
        self.script = {k: list(v) for k, v in script.items()}
        self.calls: list[list[str]] = []

    def __call__(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        actions = lines[0::2]
        ids = [next(iter(a.values()))["_id"] for a in actions]
        self.calls.append(ids)
        items = []
        for doc_id in ids:
            status = self.script.get(doc_id, [201]).pop(0) if self.script.get(doc_id) else 201
            body: dict[str, Any] = {"_id": doc_id, "status": status}
            if status >= 400:
                body["error"] = {"type": "mapper_parsing_exception", "reason": "failed to parse field [source.ip]"}
            items.append({"create": body})
        return {"errors": any(i["create"]["status"] >= 300 for i in items), "items": items}


def test_only_overloaded_items_are_retried_after_a_delay() -> None:
    cluster = Cluster({"id1": [429, 429, 201], "id2": [409], "id3": [400]})
    slept: list[float] = []
    ingester = BulkIngester(cluster, Backoff(initial=1, jitter=0), sleep=slept.append)
    result = ingester.ingest(_ops(4))
    assert sorted(result.created) == ["id0", "id1"]
    assert result.existing == ["id2"]  # stored before: not an error (idempotent ingest)
    assert [(f.doc_id, f.status) for f in result.failed] == [("id3", 400)]
    assert "source.ip" in result.failed[0].reason
    assert cluster.calls == [["id0", "id1", "id2", "id3"], ["id1"], ["id1"]]
    assert slept == [1, 2]
    assert result.retries == 2


def test_a_cluster_that_stays_overloaded_pushes_back() -> None:
    cluster = Cluster({"id0": [503] * 10})
    slept: list[float] = []
    ingester = BulkIngester(cluster, Backoff(initial=0.1, retries=3, jitter=0), sleep=slept.append)
    with pytest.raises(BackPressure, match=r"1 of 2 documents .* after 3 retries .*id0"):
        ingester.ingest(_ops(2))
    assert len(slept) == 3


def test_a_malformed_response_is_an_error_not_a_silent_loss() -> None:
    ingester = BulkIngester(lambda lines: {"items": []}, sleep=lambda s: None)
    with pytest.raises(StoreError, match="0 items for 3 operations"):
        ingester.ingest(_ops(3))
