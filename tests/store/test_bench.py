"""The store-only ingest micro-benchmark reports figures for events it really stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.bench import bench_put_events
from tests.helpers import event


def test_bench_put_events_reports_both_sides(tmp_path: Path) -> None:
    events = [event(i, {"message": f"pump {i} started", "source.ip": f"10.0.{i % 7}.1"}) for i in range(300)]
    lines: list[str] = []
    figures = bench_put_events(events, batch=100, rounds=2, workdir=tmp_path, print_to=lines.append)
    assert figures.events == 300
    assert figures.put_us > 0 and figures.reference_us > 0 and figures.bytes_per_event > 100
    assert 0 < figures.locked_us < figures.put_us  # rows are built before the lock is taken
    assert any("put_events / reference" in line for line in lines)
    assert list(tmp_path.iterdir()) == []  # its databases are removed


def test_bench_put_events_needs_events() -> None:
    with pytest.raises(ValueError, match="needs events"):
        bench_put_events([])
