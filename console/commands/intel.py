"""``citysoc intel``: import STIX bundles, pull TAXII collections, retro-hunt, share incidents, ATT&CK coverage.

Thin shell over :mod:`enrichment.intel` and :mod:`detections.intel`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from detections.incidents import IncidentManager
from detections.intel import IntelAlerter
from detections.pack import default_rule_paths, load_rules
from enrichment.intel.attack import configured_catalog
from enrichment.intel.errors import IntelError
from enrichment.intel.feeds import ImportResult, import_bundle, pull_taxii
from enrichment.intel.indicators import IndicatorIndex
from enrichment.intel.retrohunt import retrohunt
from enrichment.intel.sharing import export_incident, import_sightings
from store.base import Store
from store.errors import StoreError
from store.intel import IntelStore, open_intel
from store.registry import open_store


@contextmanager
def _stores() -> Iterator[tuple[Store, IntelStore]]:
    try:
        with open_store() as store:
            intel = open_intel(store)
            try:
                yield store, intel
            finally:
                intel.close()
    except (IntelError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc


def _hunt(store: Store, result: ImportResult, hunt: bool) -> None:
    for error in result.errors:
        click.echo(f"skipped: {error}", err=True)
    index = IndicatorIndex()
    index.add_all(result.new_indicators, result.feed)
    for item in index.stats.unsupported:
        click.echo(f"unsupported indicator {item.indicator_id}: {item.reason} (pattern {item.pattern!r})", err=True)
    click.echo(
        f"{result.feed}: {result.seen} objects, {len(result.new)} new versions, "
        f"{len(result.new_indicators)} new indicators, {len(result.errors)} rejected"
    )
    if hunt and result.new_indicators:
        alerts = IntelAlerter(store, IncidentManager(store)).on_hits(
            retrohunt(store, result.new_indicators, result.feed)
        )
        click.echo(f"retro-hunt: {len(alerts)} new alerts on stored events")


@click.group(name="intel")
def command() -> None:
    """Threat intel: STIX 2.1 / TAXII 2.1, retro-hunt, incident sharing, ATT&CK."""


@command.command(name="import")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--no-hunt", is_flag=True, help="Do not retro-hunt stored events with the new indicators.")
def import_cmd(bundle: Path, no_hunt: bool) -> None:
    """Import a STIX 2.1 bundle file, then retro-hunt the stored events with its new indicators."""
    with _stores() as (store, intel):
        try:
            _hunt(store, import_bundle(bundle, intel), not no_hunt)
        except IntelError as exc:
            raise click.ClickException(str(exc)) from exc


@command.command(name="pull")
@click.argument("collection_url")
@click.option("--user", envvar="CITYSOC_TAXII_USER")
@click.option("--password", envvar="CITYSOC_TAXII_PASSWORD")
@click.option("--full", is_flag=True, help="Ignore the saved position and pull the whole collection.")
@click.option("--page-size", default=100, show_default=True, type=int)
@click.option("--no-hunt", is_flag=True)
def pull_cmd(
    collection_url: str, user: str | None, password: str | None, full: bool, page_size: int, no_hunt: bool
) -> None:
    """Pull a TAXII 2.1 collection (its URL, ending in /collections/<id>/), incrementally."""
    with _stores() as (store, intel):
        try:
            _hunt(store, pull_taxii(collection_url, intel, user, password, page_size, full), not no_hunt)
        except IntelError as exc:
            raise click.ClickException(str(exc)) from exc


@command.command(name="retrohunt")
def retrohunt_cmd() -> None:
    """Hunt all stored events with every stored indicator (alerts already raised are not repeated)."""
    with _stores() as (store, intel):
        by_feed: dict[str, list[dict[str, object]]] = {}
        for item in intel.latest("indicator"):
            by_feed.setdefault(item.feed, []).append(dict(item.doc))
        alerter = IntelAlerter(store, IncidentManager(store))
        total = 0
        for feed, indicators in by_feed.items():
            total += len(alerter.on_hits(retrohunt(store, indicators, feed)))
        click.echo(f"retro-hunt: {total} new alerts")


@command.command(name="export-incident")
@click.argument("incident_id")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="File (default: stdout).")
def export_cmd(incident_id: str, output: Path | None) -> None:
    """Export an incident as a STIX 2.1 bundle for the national incident-response network."""
    with _stores() as (store, intel):
        try:
            text = export_incident(store, intel, incident_id).serialize(pretty=True)
        except IntelError as exc:
            raise click.ClickException(str(exc)) from exc
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text)


@command.command(name="import-sightings")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def sightings_cmd(bundle: Path) -> None:
    """Import sightings a partner sent back (a STIX 2.1 bundle)."""
    with _stores() as (_store, intel):
        try:
            sightings = import_sightings(bundle, intel)
        except IntelError as exc:
            raise click.ClickException(str(exc)) from exc
    for s in sightings:
        click.echo(f"{s['id']}\tof {s['sighting_of_ref']}\tcount {s.get('count', '?')}")
    click.echo(f"{len(sightings)} new sightings")


@command.command(name="coverage")
@click.option(
    "--attack",
    "bundles",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="ATT&CK STIX bundle (Enterprise and/or ICS); repeatable. Default: the bundles in CITYSOC_ATTACK.",
)
@click.option("--json", "as_json", is_flag=True)
def coverage_cmd(bundles: tuple[Path, ...], as_json: bool) -> None:
    """ATT&CK coverage matrix of the rule pack: rules per technique (ids from rule tags without a bundle)."""
    try:
        catalog = configured_catalog(bundles or None)
    except IntelError as exc:
        raise click.ClickException(str(exc)) from exc
    rules = load_rules(default_rule_paths())
    matrix = catalog.coverage((r.rule_id, r.tags) for r in rules.compiled)
    if as_json:
        click.echo(json.dumps(matrix, indent=2))
        return
    for tid, rule_ids in matrix.items():
        t = catalog.technique(tid)
        name = t.name if t.known else "(name unknown: load its ATT&CK bundle)"
        click.echo(f"{tid}\t{name}\t{'; '.join(t.tactics)}\t{len(rule_ids)}\t{', '.join(rule_ids)}")
    covered = sum(1 for r in matrix.values() if r)
    click.echo(f"{covered} of {len(matrix)} techniques covered", err=True)
