"""``citysoc connectors``: list and check the playbook connectors, set their secrets.

Thin shell over :mod:`playbooks.connectors`.  A secret is read from stdin
(or a hidden prompt on a terminal), never from an argument, so it stays out of
shell history and process lists; it is written encrypted and the audit log
records only its name.
"""

from __future__ import annotations

import sys

import click

from playbooks.connectors.admin import check, describe
from playbooks.connectors.config import config_path
from playbooks.connectors.errors import ConnectorError
from playbooks.connectors.secrets import SecretStore
from store.registry import home, open_store


@click.group(name="connectors")
def command() -> None:
    """Playbook connectors (HTTP, SMTP, MQTT) and their encrypted secrets."""


@command.command(name="list")
def list_cmd() -> None:
    """Connectors from $CITYSOC_HOME/connectors.yml, with which of their secrets are set."""
    try:
        rows = describe(home())
    except ConnectorError as exc:
        raise click.ClickException(str(exc)) from exc
    if not rows:
        click.echo(f"no connectors configured ({config_path(home())})")
    for row in rows:
        secrets = ", ".join(f"{n} ({'set' if ok else 'NOT SET'})" for n, ok in row["secrets"].items()) or "-"
        click.echo(f"{row['name']:<20} {row['type']:<5} {row['target']}  secrets: {secrets}")


@command.command(name="check")
def check_cmd() -> None:
    """Validate the connectors file and that every secret it names is set; lists every problem."""
    errors = check(home())
    for error in errors:
        click.echo(error, err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} problem(s) with the connectors")
    click.echo(f"connectors OK ({config_path(home())})")


@command.command(name="set-secret")
@click.argument("name")
def set_secret(name: str) -> None:
    """Store secret NAME, read from stdin (one line; a hidden prompt on a terminal), encrypted at rest."""
    if sys.stdin.isatty():
        value = click.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    try:
        SecretStore(home()).set(name, value)
    except ConnectorError as exc:
        raise click.ClickException(str(exc)) from exc
    with open_store() as store:
        store.audit("cli", "connectors.secret_set", name, {"name": name})
    click.echo(f"secret {name!r} stored (encrypted)")


@command.command(name="delete-secret")
@click.argument("name")
def delete_secret(name: str) -> None:
    """Remove secret NAME."""
    try:
        removed = SecretStore(home()).delete(name)
    except ConnectorError as exc:
        raise click.ClickException(str(exc)) from exc
    if not removed:
        raise click.ClickException(f"no secret {name!r}")
    with open_store() as store:
        store.audit("cli", "connectors.secret_deleted", name, {"name": name})
    click.echo(f"secret {name!r} deleted")
