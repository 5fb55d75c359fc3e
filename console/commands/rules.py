"""``citysoc rules``: check rule packs, convert rules to backend queries, retro-hunt the embedded store.

Thin shells over :mod:`detections.pack` and :mod:`detections.sigma.convert`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

_PATHS = click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))


@click.group("rules")
def command() -> None:
    """Sigma rule packs: check, convert, retro-hunt."""


@command.command("check")
@_PATHS
@click.option("--json", "as_json", is_flag=True, help="One JSON line per rule not loaded, then the counts.")
@click.option("--all", "show_all", is_flag=True, help="List loaded rules too.")
def check(paths: tuple[Path, ...], as_json: bool, show_all: bool) -> None:
    """Load rule files and report loaded / unsupported / invalid rules with file, line and reason.

    Exits 1 when any rule is invalid, so CI fails on a broken rule but not on an unsupported one.
    """
    from detections.pack import load_rules

    loaded = load_rules(list(paths))
    applied_filters = set(loaded.filters)
    evaluated = {str(rule.id or rule.title) for rule in loaded.correlations}
    for entry in loaded.report.entries:
        if entry.status.value == "unsupported" and (
            entry.title in applied_filters or (entry.rule_id and entry.rule_id in evaluated)
        ):
            continue  # filters and correlations the stream evaluates count as loaded
        if entry.status.value == "loaded" and not show_all:
            continue
        record = {
            "status": entry.status.value,
            "kind": entry.kind.value,
            "path": entry.location.path,
            "line": entry.location.line,
            "id": entry.rule_id,
            "title": entry.title,
            "reason": entry.reason,
        }
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(f"{entry.location}: {entry.status.value}: {entry.title or '-'}: {entry.reason or ''}")
    counts = loaded.counts()
    if as_json:
        click.echo(json.dumps({"loaded": counts["loaded"], "unsupported": counts["unsupported"],
                               "invalid": counts["invalid"]}))
    else:
        click.echo(f"{counts['loaded']} loaded, {counts['unsupported']} unsupported, {counts['invalid']} invalid")
    sys.exit(1 if counts["invalid"] else 0)


@command.command("convert")
@_PATHS
@click.option("--target", required=True, type=click.Choice(["sqlite", "lucene", "esql", "eql"]))
def convert(paths: tuple[Path, ...], target: str) -> None:
    """Print each loaded rule as a query of the target (one JSON line per rule)."""
    from detections.pack import load_rules
    from detections.sigma.convert import convert as convert_rules

    loaded = load_rules(list(paths))
    failed = 0
    for conversion in convert_rules(loaded.report, target):
        failed += conversion.error is not None
        click.echo(json.dumps({
            "id": conversion.rule_id, "title": conversion.title, "path": conversion.path, "line": conversion.line,
            "target": target, "queries": list(conversion.queries), "error": conversion.error,
        }, ensure_ascii=False))
    click.echo(f"{failed} rules could not be converted to {target}", err=True)


@command.command("retro-hunt")
@_PATHS
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Embedded store file; default: the configured sqlite store.")
@click.option("--since", default=None, help="ISO 8601 start (inclusive).")
@click.option("--until", default=None, help="ISO 8601 end (exclusive).")
def retro_hunt(paths: tuple[Path, ...], db: Path | None, since: str | None, until: str | None) -> None:
    """Run rules over the stored events via SQL; one NDJSON line per confirmed match, summary on stderr."""
    from detections.pack import load_rules
    from detections.sigma.convert import retro_hunt as run
    from store.registry import default_url

    if db is None:
        url = default_url()
        if not url.startswith("sqlite:///"):
            raise click.UsageError(f"retro-hunt runs on the embedded store; {url} is not one (give --db)")
        db = Path(url[len("sqlite:///"):])
    loaded = load_rules(list(paths))
    matches, summary = run(db, loaded.report, since, until)
    for match in matches:
        click.echo(json.dumps({
            "rule": {"id": match.rule.rule_id, "title": match.rule.title, "level": match.rule.level},
            "event": match.event.to_document(),
        }, ensure_ascii=False, sort_keys=True))
    click.echo(json.dumps({"rules": summary.rules, "candidates": summary.candidates, "matches": summary.matches,
                           "skipped": summary.skipped}), err=True)
