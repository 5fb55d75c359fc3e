"""``citysoc store migrate`` and ``citysoc store templates`` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from console.cli import cli
from store.sqlite import SQLiteStore
from tests.helpers import event


def test_migrate_copies_the_store_and_reports_counts(tmp_path: Path) -> None:
    source = SQLiteStore(tmp_path / "a.db")
    source.put_events([event(i, {"message": f"pump P{i} started"}) for i in range(30)])
    source.audit("admin", "login", "console", {})
    source.close()
    result = CliRunner().invoke(
        cli, ["store", "migrate", "--from", f"sqlite:///{tmp_path / 'a.db'}", "--to", f"sqlite:///{tmp_path / 'b.db'}"]
    )
    assert result.exit_code == 0, result.output
    assert "events: 30 copied, 0 already there (source 30)" in result.output
    assert "audit chain verifies in the target: 1 entries" in result.output
    target = SQLiteStore(tmp_path / "b.db")
    assert target.count_events() == 30
    target.close()


def test_migrate_refuses_bad_urls_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    same = CliRunner().invoke(cli, ["store", "migrate", "--from", url, "--to", url])
    assert same.exit_code != 0 and "same store" in same.output
    unknown = CliRunner().invoke(cli, ["store", "migrate", "--from", url, "--to", "cassandra://x"])
    assert unknown.exit_code != 0 and "no store backend for scheme 'cassandra'" in unknown.output
    nohost = CliRunner().invoke(cli, ["store", "migrate", "--from", url, "--to", "elasticsearch://"])
    assert nohost.exit_code != 0 and "has no host" in nohost.output


def test_templates_print_the_generated_mapping() -> None:
    result = CliRunner().invoke(cli, ["store", "templates", "--flavor", "opensearch", "--prefix", "hanoi"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    props = body["component_templates"]["hanoi-events-mappings"]["template"]["mappings"]["properties"]
    assert props["source"]["properties"]["ip"] == {"type": "ip"}
    assert "hanoi-events-default" in body["lifecycle_policies"]
