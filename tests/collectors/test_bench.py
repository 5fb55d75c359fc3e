"""The ingest benchmark's load generator and bookkeeping (not its speed: that is printed, not asserted)."""

from __future__ import annotations

from pathlib import Path

from collectors.bench import TEMPLATES, describe_run, make_lines, run_ingest_bench, source_files


def test_every_template_is_stored_completely_and_figures_are_reported() -> None:
    printed: list[str] = []
    result = run_ingest_bench(records=40, print_to=printed.append, repeats=2, end_to_end_records=80)
    assert [row["format"] for row in result["formats"]] == list(TEMPLATES)
    for row in result["formats"]:
        assert row["events"] == 40  # SCADA: 1 row x 40 tags
        assert min(row["parse_eps"], row["pipeline_eps"], row["reference_eps"]) > 0
    store = result["store"]  # the store-only figures, same run: put_events against a bare JSON insert
    assert store["events"] == 40 * len(TEMPLATES) and store["prepared"]
    assert 0 < store["locked_us"] < store["put_us"] and store["reference_us"] > 0
    assert any(line.strip().startswith("put_events / reference") for line in printed)
    runs = result["end_to_end_runs"]
    assert [(run["processes"], run["parse_workers"]) for run in runs] == [(1, 0), (1, 1), (1, 2), (2, 0)]
    assert result["end_to_end_records_per_format"] == 80  # SCADA: 2 rows x 40 tags
    assert "end to end: 80 records per format, 2 runs of each, a new store per run" in printed
    for run in runs:
        assert run["events"] == 80 * len(TEMPLATES)  # every process's share, each stored once
        assert len(run["rates"]) == 2 and run["events_per_s"] == max(run["rates"])  # each run on a new store
        assert min(run["rates"]) <= run["events_per_s_median"] <= run["events_per_s"]
    assert printed[0].startswith("ingest benchmark, 40 records per format")
    assert [line.split(": ")[0].rsplit(", ", 1)[-1] for line in printed[-5:-1]] == [
        "1 collector process", "1 collector process + 1 parse worker", "1 collector process + 2 parse workers",
        "2 collector processes",
    ]
    assert printed[-2].startswith(
        "end to end (files -> FileCollector -> pipeline -> SQLite), all formats, 2 collector processes: 560 events"
    )
    rates = runs[-1]["rates"]  # every run's rate is printed, not only the best and the median
    assert f"; runs {rates[0]:,.0f}, {rates[1]:,.0f}), CPU per event" in printed[-2]
    best = result["end_to_end_best"]
    assert best["events_per_s"] == max(run["events_per_s"] for run in runs)
    assert printed[-1] == f"end to end, fastest here: {describe_run(best)}, {best['events_per_s']:,.0f} events/s"



def test_each_collector_process_gets_one_source_of_every_format(tmp_path: Path) -> None:
    parts = source_files(tmp_path, 41, 2)
    assert [[fmt for fmt, _ in part] for part in parts] == [list(TEMPLATES)] * 2
    for n, fmt in enumerate(TEMPLATES):
        texts = [part[n][1].read_text(encoding="utf-8").splitlines() for part in parts]
        lines = make_lines(fmt, 41, seed=11)
        if fmt == "scada.csv":  # each source is a CSV file with its own header
            assert [text[0] for text in texts] == [lines[0]] * 2
            texts = [text[1:] for text in texts]
            lines = lines[1:]
        assert sorted(texts[0] + texts[1]) == sorted(lines)  # every record once, in one of the two sources
        assert abs(len(texts[0]) - len(texts[1])) <= 1
    assert source_files(tmp_path, 41, 2) == parts  # made once per work directory
