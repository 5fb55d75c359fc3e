"""The ingest benchmark's load generator and bookkeeping (not its speed: that is printed, not asserted)."""

from __future__ import annotations

from collectors.bench import TEMPLATES, run_ingest_bench


def test_every_template_is_stored_completely_and_figures_are_reported() -> None:
    printed: list[str] = []
    result = run_ingest_bench(records=40, print_to=printed.append)
    assert [row["format"] for row in result["formats"]] == list(TEMPLATES)
    for row in result["formats"]:
        assert row["events"] == 40  # SCADA: 1 row x 40 tags
        assert min(row["parse_eps"], row["pipeline_eps"], row["reference_eps"]) > 0
    assert [run["processes"] for run in result["end_to_end_runs"]] == [1, 2]
    for run in result["end_to_end_runs"]:
        assert run["events"] == 40 * len(TEMPLATES)  # both processes' shares, each stored once
    assert printed[0].startswith("ingest benchmark, 40 records per format")
    assert printed[-1].startswith(
        "end to end (files -> FileCollector -> pipeline -> SQLite), all formats, 2 collector processes: 280 events"
    )
