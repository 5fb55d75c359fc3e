"""``citysoc bench console`` on a tiny size: the generated store is valid and every request is measured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from console import bench_console
from store.filters import IncidentFilter
from store.query import parse
from store.sqlite import SQLiteStore


def test_generated_store_is_valid_and_the_requests_are_timed(tmp_path: Path) -> None:
    path = tmp_path / "bench.db"
    lines: list[str] = []
    timings = bench_console.run(path, incidents=60, events=400, repeat=3, print_to=lines.append)
    store = SQLiteStore(path)
    try:
        assert store.count_events() == 400 and store.count_incidents() == 60
        assert store.count_alerts() == 60
        assert all(store.get_event(e.id) == e for e in store.search_events(limit=20))  # documents parse back
        now = datetime.now(UTC)
        water = store.query_incidents(IncidentFilter(sectors=("water",)), limit=100)
        assert water.total > 0 and all("water" in i.entities["asset.sector"] for i in water.items)
        assert store.query_incidents(IncidentFilter(scope=("dept-water",)), limit=0).total == water.total
        page = store.find_events(parse("event.action:login"), now - timedelta(days=31), now + timedelta(days=1),
                                 histogram=True)  # fmt: skip
        assert page.total > 0 and all(e.get("event.action") == "login" for e in page.items)
    finally:
        store.close()
    names = [t.name for t in timings]
    assert len(names) == 10 and names[-2].startswith("reference")
    assert all(t.p95_ms >= t.p50_ms > 0 for t in timings)
    assert any("event search, field query source.ip:" in line for line in lines)
    assert lines[-1].startswith("reference: Store.search_events")
    assert next(bench_console.iter_lines(timings)).startswith("| incident list, first page |")
