"""``citysoc assets``: the system register — import, export, list, unknown-device candidates.

Thin shell over :mod:`enrichment.assets`; the register lives at ``CITYSOC_ASSETS``
(default ``$CITYSOC_HOME/assets.json``), where the runtime's asset enricher reads it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from console.runtime import assets_path
from enrichment.assets import AssetRegister, RegisterError, candidates
from store.event import format_ts, parse_ts
from store.registry import open_store


def _current() -> AssetRegister:
    path = assets_path()
    try:
        return AssetRegister.load(path) if path.exists() else AssetRegister()
    except RegisterError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(name="assets")
def command() -> None:
    """The system register: every information system and device with its security level."""


@command.command(name="import")
@click.argument("source", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_cmd(source: Path) -> None:
    """Replace the register with SOURCE (CSV, JSON or YAML); every bad row is listed and nothing is written."""
    errors: list[str] = []
    try:
        register = AssetRegister.load(source, errors)
    except RegisterError as exc:
        raise click.ClickException(str(exc)) from exc
    if errors:
        for error in errors:
            click.echo(error, err=True)
        raise click.ClickException(f"{len(errors)} bad rows in {source}; the register was not changed")
    target = assets_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    register.dump(target)
    click.echo(f"{len(register)} assets written to {target}")


@command.command(name="export")
@click.argument("target", type=click.Path(path_type=Path, dir_okay=False))
def export_cmd(target: Path) -> None:
    """Write the register to TARGET (CSV if it ends in .csv, else JSON)."""
    register = _current()
    register.dump(target)
    click.echo(f"{len(register)} assets written to {target}")


@command.command(name="list")
def list_cmd() -> None:
    """One line per asset: id, agency, sector, domain, layer, security level, criticality, last drill."""
    for a in _current():
        click.echo(
            "\t".join(
                [a.id, a.agency, a.sector, a.domain, a.layer, str(a.security_level), a.criticality, a.last_drill or "-"]
            )
        )


@command.command(name="candidates")
@click.option("--since", help="ISO 8601 time; default: all stored events.")
def candidates_cmd(since: str | None) -> None:
    """Devices seen in stored telemetry that the register does not know."""
    start: datetime | None = parse_ts(since) if since else None
    with open_store() as store:
        found = candidates(store, _current(), start)
    for c in found:
        hints = ", ".join(f"{k}={v}" for k, v in c.hints.items())
        click.echo(
            f"{c.kind}\t{c.value}\t{c.count}\t{format_ts(c.first_seen)}\t{format_ts(c.last_seen)}\t"
            f"{','.join(c.datasets)}\t{hints}"
        )
    click.echo(f"{len(found)} unknown devices", err=True)
