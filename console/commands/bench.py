"""``citysoc bench``: benchmarks that print figures (speed targets live here, not in unit tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

_SHARED = Path("..") / "shared" / "data"


@click.group("bench")
def command() -> None:
    """Benchmarks; each prints its figures and a reference measured in the same run."""


@command.command("detect")
@click.option(
    "--sigma", "sigma_windows", type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=_SHARED / "sigma" / "rules" / "windows", show_default=True, help="SigmaHQ Windows rules.",
)
@click.option(
    "--regression", type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=_SHARED / "sigma-regression" / "regression_data", show_default=True, help="Event samples.",
)
@click.option("--events", type=click.IntRange(min=100), default=20_000, show_default=True)
@click.option("--reference-events", type=click.IntRange(min=10), default=2_000, show_default=True)
def detect(sigma_windows: Path, regression: Path, events: int, reference_events: int) -> None:
    """Events/s per core with 1, 100 and all SigmaHQ Windows rules, and peak memory."""
    from detections.bench import run_bench
    from detections.sigma.index import implementation

    rows, peak_kib, load_seconds = run_bench(sigma_windows, regression, events, reference_events)
    click.echo(f"loaded the Windows pack in {load_seconds:.1f} s (one core, one thread)")
    click.echo(f"per-event loop of the anchor index: {implementation()}")
    click.echo(f"{'workload':<25} {'rules':>6} {'events':>7} {'indexed ev/s':>13} {'per CPU-s':>10} "
               f"{'(median)':>10} {'reference ev/s':>15} {'speed-up':>9} {'matches':>8}")
    for row in rows:
        click.echo(
            f"{row.workload:<25} {row.rules:>6} {row.events:>7} {row.indexed_eps:>13,.0f} "
            f"{row.indexed_cpu_eps:>10,.0f} {row.indexed_cpu_median:>10,.0f} "
            f"{row.reference_eps:>15,.0f} {row.indexed_eps / row.reference_eps:>8.1f}x {row.matches:>8}"
        )
    click.echo("indexed ev/s is over wall time; per CPU-s over the benchmark thread's CPU time (events/s per core):")
    click.echo("the best of 3 runs, each on a new rule set and fresh event copies, and (median) of the three")
    click.echo(f"peak memory (max RSS): {peak_kib / 1024:.0f} MiB")
    sys.stdout.flush()


@command.command("ingest")
@click.option("--records", type=click.IntRange(min=100), default=5_000, show_default=True,
              help="Records per format for the per-format and store figures.")
@click.option("--end-to-end-records", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Records per format of each end-to-end run (sustained ingest into a growing store).")
def ingest(records: int, end_to_end_records: int) -> None:
    """Events/s for parse, parse+normalise+store per format and end to end, against a raw-insert reference.

    End to end: one collector inline, with one and with two parse workers, and two collector processes;
    each 3 times on a new store (best and median); the last line names the fastest of them on this machine.
    """
    from collectors.bench import run_ingest_bench

    run_ingest_bench(records=records, print_to=click.echo, end_to_end_records=end_to_end_records)


@command.command("playbooks")
@click.option("--broker", help="Broker URL, e.g. redis://127.0.0.1:6379/0 (default: the embedded one).")
@click.option("--levels", default="1,10,100", show_default=True, help="Runs per burst wave / runs in flight.")
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes.")
@click.option("--mode", type=click.Choice(["burst", "inflight", "both"]), default="both", show_default=True,
              help="burst: N runs dispatched at once; inflight: probes arrive one at a time while N runs wait.")
@click.option("--probes", type=click.IntRange(min=1), default=40, show_default=True, help="In-flight probes per level.")
def playbooks(broker: str | None, levels: str, concurrency: int, mode: str, probes: int) -> None:
    """Incident -> first step start latency p50/p95 on a real worker, and the slowdown at 10 and 100 runs.

    Two readings: a burst of N runs dispatched at once, and probes arriving one at a time while N runs wait.
    """
    from playbooks.bench import BenchError, run_inflight_bench, run_playbook_bench

    try:
        waves = [int(x) for x in levels.split(",") if x.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{levels!r}: a comma-separated list of integers", param_hint="--levels") from exc
    try:
        if mode in ("burst", "both"):
            run_playbook_bench(waves, broker, concurrency, print_to=click.echo)
        if mode in ("inflight", "both"):
            run_inflight_bench(waves, broker, concurrency, probes, print_to=click.echo)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc


@command.command("console")
@click.option("--incidents", type=click.IntRange(min=10), default=100_000, show_default=True)
@click.option("--events", type=click.IntRange(min=100), default=10_000_000, show_default=True)
@click.option("--repeat", type=click.IntRange(min=3), default=20, show_default=True, help="Timed requests per kind.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench-console.db"),
              show_default=True, help="The embedded store to generate (must not exist unless --reuse).")
@click.option("--reuse", is_flag=True, help="Measure an existing database from an earlier run.")
def console(incidents: int, events: int, repeat: int, db: Path, reuse: bool) -> None:
    """p50/p95 of the incident queue and event search on a generated embedded store (targets 300 ms, 1 s)."""
    from console.bench_console import run

    try:
        run(db, incidents, events, repeat, click.echo, reuse=reuse)
    except FileExistsError as exc:
        raise click.UsageError(str(exc)) from exc
