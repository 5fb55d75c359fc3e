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

    rows, peak_kib, load_seconds = run_bench(sigma_windows, regression, events, reference_events)
    click.echo(f"loaded the Windows pack in {load_seconds:.1f} s (one core, one thread)")
    click.echo(f"{'rules':>6} {'events':>7} {'indexed ev/s':>13} {'reference ev/s':>15} {'speed-up':>9} {'matches':>8}")
    for row in rows:
        click.echo(
            f"{row.rules:>6} {row.events:>7} {row.indexed_eps:>13,.0f} {row.reference_eps:>15,.0f} "
            f"{row.indexed_eps / row.reference_eps:>8.1f}x {row.matches:>8}"
        )
    click.echo(f"peak memory (max RSS): {peak_kib / 1024:.0f} MiB")
    sys.stdout.flush()


@command.command("ingest")
@click.option("--records", type=click.IntRange(min=100), default=5_000, show_default=True, help="Records per format.")
def ingest(records: int) -> None:
    """Events/s for parse, parse+normalise+store per format and end to end, against a raw-insert reference."""
    from collectors.bench import run_ingest_bench

    run_ingest_bench(records=records, print_to=click.echo)
