"""``citysoc retention``: enforce the privacy policy's retention per data class on stored events.

Thin shell over :mod:`collectors.retention`; run ``citysoc retention prune`` from cron.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from collectors.privacy import PrivacyError, load_policies
from collectors.retention import RetentionPolicy, prune
from store.errors import StoreError
from store.registry import home, open_store


@click.group("retention")
def command() -> None:
    """Retention of stored events per data class (privacy policy ``retention_days``)."""


@command.command("prune")
@click.option("--policies", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Privacy policies (default: CITYSOC_HOME/privacy.json; without it the default policy).")
@click.option("--store", "store_url", default=None, help="Store URL (default: the configured store).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted, delete nothing.")
def prune_command(policy_file: Path | None, store_url: str | None, dry_run: bool) -> None:
    """Delete events older than their source's retention for their data class; prints a JSON report."""
    path = policy_file or home() / "privacy.json"
    try:
        policies = load_policies(path) if path.exists() else []
        with open_store(store_url) as store:
            report = prune(store, RetentionPolicy(policies), datetime.now(UTC), dry_run=dry_run)
    except (PrivacyError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"scanned": report.scanned, "deleted": report.deleted, "dry_run": report.dry_run}))
