"""``citysoc store``: copy one store into another, and show the search-engine templates.

Thin shell over :mod:`store.migrate` and :mod:`store.es_mapping`.
"""

from __future__ import annotations

import json

import click

from store.errors import StoreError
from store.es_mapping import (
    Flavor,
    RetentionConfig,
    events_component_template,
    events_index_templates,
    ilm_policies,
    ism_policies,
)
from store.migrate import migrate as migrate_store
from store.migrate import verify_copy
from store.registry import default_url, open_store


@click.group("store")
def command() -> None:
    """Store backends: migration between them, search-engine templates."""


@command.command("migrate")
@click.option("--to", "target_url", required=True, help="Target store URL, e.g. elasticsearch+https://host:9200.")
@click.option("--from", "source_url", default=None, help="Source store URL (default: the configured store).")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000), help="Events per write.")
def migrate(target_url: str, source_url: str | None, batch: int) -> None:
    """Copy events, alerts, incidents with timelines, runs, audit (chain kept), dead letters and users."""
    source_url = source_url or default_url()
    if source_url == target_url:
        raise click.ClickException("--from and --to name the same store")
    try:
        with open_store(source_url) as source, open_store(target_url) as target:
            report = migrate_store(
                source, target, batch, progress=lambda kind, n: click.echo(f"{kind}: {n} read", err=True)
            )
            problems = verify_copy(source, target)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in report.lines():
        click.echo(line)
    if problems:
        raise click.ClickException("the copy is incomplete: " + "; ".join(problems))


@command.command("templates")
@click.option("--flavor", type=click.Choice([f.value for f in Flavor]), default=Flavor.ELASTICSEARCH.value)
@click.option("--prefix", default="citysoc", show_default=True)
def templates(flavor: str, prefix: str) -> None:
    """Print the index templates and lifecycle policies the search-engine store installs (JSON)."""
    kind = Flavor(flavor)
    config = RetentionConfig()
    body = {
        "component_templates": {f"{prefix}-events-mappings": events_component_template(kind)},
        "index_templates": events_index_templates(prefix, config, kind),
        "lifecycle_policies": ilm_policies(prefix, config)
        if kind is Flavor.ELASTICSEARCH
        else ism_policies(prefix, config),
    }
    click.echo(json.dumps(body, indent=2, sort_keys=True))
