"""What the ``citysoc connectors`` commands show and check, as library functions (the CLI only prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playbooks.connectors.config import HttpConfig, SmtpConfig, config_path, load_connectors
from playbooks.connectors.errors import ConnectorError
from playbooks.connectors.secrets import SecretStore


def describe(home: str | Path) -> list[dict[str, Any]]:
    """One row per connector: name, type, where it points, its secrets and whether each is set (never values)."""
    secrets = SecretStore(home)
    have = set(secrets.names())
    rows = []
    for config in load_connectors(home):
        if isinstance(config, HttpConfig):
            target = config.url
        elif isinstance(config, SmtpConfig):
            target = f"smtp://{config.host}:{config.port} ({config.security})"
        else:
            target = f"mqtt{'s' if config.tls else ''}://{config.host}:{config.port}/{config.topic_prefix}"
        rows.append({
            "name": config.name,
            "type": config.type,
            "target": target,
            "secrets": {name: name in have for name in config.secrets()},
        })
    return rows


def check(home: str | Path) -> list[str]:
    """Every problem with the connectors file and the secrets it names; empty when all is well."""
    errors: list[str] = []
    try:
        connectors = load_connectors(home, errors)
    except ConnectorError as exc:
        return [str(exc)]
    try:
        have = set(SecretStore(home).names())
    except ConnectorError as exc:
        return [*errors, str(exc)]
    for config in connectors:
        for name in config.secrets():
            if name not in have:
                errors.append(
                    f"{config_path(home)}: connector {config.name!r} needs secret {name!r}, which is not set "
                    f"(citysoc connectors set-secret {name})"
                )
        if config.ca_file and not Path(config.ca_file).is_file():
            errors.append(f"{config_path(home)}: connector {config.name!r}: ca_file {config.ca_file} does not exist")
    return errors
