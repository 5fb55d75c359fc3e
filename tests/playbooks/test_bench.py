"""The playbook benchmark's in-flight mode at a tiny size, on a real ``citysoc worker`` (embedded broker).

Checks the mechanics (held runs really stay active and waiting on their
approval, probes are measured one at a time); the figures themselves belong
to ``citysoc bench playbooks``, not to a timed unit test.
"""

from __future__ import annotations

import pytest

from playbooks.bench import BenchError, run_inflight_bench

pytestmark = pytest.mark.slow


def test_inflight_mode_measures_each_probe_with_runs_held_open() -> None:
    lines: list[str] = []
    rows = run_inflight_bench(levels=(1, 3), probes=3, gap=0.05, concurrency=1, print_to=lines.append)
    assert [row.runs for row in rows] == [1, 3]
    for row in rows:
        # a latency is measured from the dispatch to the step's claim: positive, and p50 <= p95 <= max
        assert 0 < row.p50_ms <= row.p95_ms <= row.max_ms < 120_000
    assert lines[0].startswith("mode: in flight") and "embedded (SQLite)" in lines[0]
    assert lines[-1].startswith("targets:")


@pytest.mark.parametrize("levels", [(10, 1), (), (0, 1)])
def test_inflight_levels_must_be_increasing_and_positive(levels: tuple[int, ...]) -> None:
    with pytest.raises(BenchError, match="increasing and >= 1"):
        run_inflight_bench(levels=levels, print_to=lambda _: None)
