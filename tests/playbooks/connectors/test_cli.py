"""``citysoc connectors``: set-secret from stdin, list, check -- the value never printed, logged or audited."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from console.cli import cli
from store.sqlite import SQLiteStore

VALUE = "cli-Secret-value-8812"
CONFIG = """connectors:
  ticketing:
    type: http
    url: https://tickets.city.example/api
    auth: {scheme: bearer, secret: tickets-token}
  mail:
    type: smtp
    host: smtp.city.example
    sender: soc@city.example
    username: citysoc
    password_secret: smtp-password
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path))
    monkeypatch.delenv("CITYSOC_SECRETS_KEY", raising=False)
    monkeypatch.delenv("CITYSOC_CONNECTORS", raising=False)
    monkeypatch.delenv("CITYSOC_STORE_URL", raising=False)
    (tmp_path / "connectors.yml").write_text(CONFIG)
    return tmp_path


def test_set_secret_from_stdin_list_and_check(home: Path) -> None:
    runner = CliRunner()
    check = runner.invoke(cli, ["connectors", "check"])
    assert check.exit_code == 1
    assert "needs secret 'tickets-token', which is not set" in check.output
    assert "needs secret 'smtp-password'" in check.output
    result = runner.invoke(cli, ["connectors", "set-secret", "tickets-token"], input=VALUE + "\n")
    assert result.exit_code == 0, result.output
    runner.invoke(cli, ["connectors", "set-secret", "smtp-password"], input="other-Secret-1\n")
    listing = runner.invoke(cli, ["connectors", "list"])
    assert "ticketing" in listing.output and "tickets-token (set)" in listing.output
    assert runner.invoke(cli, ["connectors", "check"]).exit_code == 0
    assert runner.invoke(cli, ["connectors", "set-secret", "Bad Name"], input="x\n").exit_code == 1
    assert runner.invoke(cli, ["connectors", "delete-secret", "smtp-password"]).exit_code == 0
    assert "smtp-password (NOT SET)" in runner.invoke(cli, ["connectors", "list"]).output
    everything = check.output + result.output + listing.output
    with SQLiteStore(home / "citysoc.db") as store:
        audit = [asdict(e) for e in store.audit_entries()]
    in_order = [(e["action"], e["object"]) for e in sorted(audit, key=lambda e: e["seq"])]
    assert in_order == [("connectors.secret_set", "tickets-token"), ("connectors.secret_set", "smtp-password"),
                        ("connectors.secret_deleted", "smtp-password")]
    for text in (everything, json.dumps(audit, default=str), (home / "secrets.json").read_text()):
        assert VALUE not in text
