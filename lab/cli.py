"""``citysoc demo`` and ``citysoc lab``: plug-in commands registered through entry points."""

from __future__ import annotations

import json
import sys

import click

from store.registry import home


@click.command()
@click.option("--no-serve", is_flag=True, help="Exit after the pipeline and print a one-line JSON summary.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
def demo(no_serve: bool, host: str, port: int, seed: int) -> None:
    """Run the lab demo end to end (lab -> collectors -> store -> detections -> playbooks), then serve the console."""
    from lab.demo import DemoError, run_demo

    try:
        result = run_demo(seed=seed)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = result.summary()
    if no_serve:
        click.echo(json.dumps(summary))
        return
    click.echo(f"Demo pipeline finished: {json.dumps(summary)}", err=True)
    click.echo(f"{result.dead_letters} malformed record(s) went to the dead-letter table.", err=True)
    from console.cli import serve

    ctx = click.get_current_context()
    ctx.invoke(serve, host=host, port=port)


@click.group()
def lab() -> None:
    """The simulated city: scenarios and telemetry."""


@lab.command("emit")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--minutes", default=10, show_default=True, type=int)
@click.option("--attack/--no-attack", default=True, show_default=True)
@click.option("--start", default="2026-11-21T00:00:00Z", show_default=True, help="Start of the telemetry (UTC).")
def emit(seed: int, minutes: int, attack: bool, start: str) -> None:
    """Print the demo scenario's telemetry as NDJSON (channel, ts, malicious, label, line): deterministic per seed."""
    from datetime import datetime

    from lab import scenario

    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    emissions = scenario.benign(seed, begin, minutes)
    if attack:
        emissions += scenario.attack(seed, emissions[-1].ts)
    for e in emissions:
        sys.stdout.write(
            json.dumps(
                {
                    "channel": e.channel,
                    "ts": e.ts.isoformat(),
                    "malicious": e.malicious,
                    "label": e.label,
                    "line": e.line,
                }
            )
            + "\n"
        )
    click.echo(f"{len(emissions)} records; data home {home()}", err=True)
