"""The OpenAPI 3.1 document of ``/api/v1``, merged from the fragments in this package.

Each API area keeps one YAML fragment here (``core.yml`` for incidents, events and
dashboards; other areas add their own file) holding ``paths`` and
``components.schemas``.  :func:`document` merges them under one ``info`` block
with the shared security schemes and error responses; a path or schema defined
twice, or a fragment with other top-level keys, is an error naming the files.
The console serves the result at ``GET /api/v1/openapi.json``.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

from console.services import ConfigError

VERSION = "1.0.0"
ALLOWED_KEYS = frozenset({"paths", "components"})
ALLOWED_COMPONENTS = frozenset({"schemas", "parameters", "responses"})


def fragments() -> list[tuple[str, dict[str, Any]]]:
    """``(file name, parsed fragment)`` for every ``*.yml`` in this package, by name."""
    out = []
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yml"):
            continue
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"console/openapi/{entry.name}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"console/openapi/{entry.name}: a fragment is a mapping with paths and components")
        out.append((entry.name, data))
    return out


def merge(parts: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "CitySOC console API",
            "version": VERSION,
            "description": "Incidents, events, dashboards, detection rules, playbooks and administration of "
            "CitySOC. Authenticate with an API token (Authorization: Bearer) or the console session "
            "(then send the CSRF token from GET /me in X-CSRF-Token on every change). Errors are "
            '{"error": {"code": ..., "message": ...}}.',
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (cst_...)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "citysoc_session"},
            },
            "schemas": {},
            "parameters": {},
            "responses": {},
        },
    }
    owner: dict[str, str] = {}
    for name, fragment in parts:
        unknown = set(fragment) - ALLOWED_KEYS
        if unknown:
            raise ConfigError(f"console/openapi/{name}: unknown top-level keys {sorted(unknown)}; "
                              "use paths and components")  # fmt: skip
        for path, item in (fragment.get("paths") or {}).items():
            key = f"path {path}"
            if key in owner:
                raise ConfigError(f"console/openapi/{name}: {key} is defined in {owner[key]} already")
            owner[key] = name
            doc["paths"][path] = copy.deepcopy(item)
        components = fragment.get("components") or {}
        for kind, entries in components.items():
            if kind not in ALLOWED_COMPONENTS:
                raise ConfigError(f"console/openapi/{name}: components.{kind} is not allowed here")
            for entry, body in (entries or {}).items():
                key = f"{kind} {entry}"
                if key in owner:
                    raise ConfigError(f"console/openapi/{name}: components.{kind}.{entry} is defined in "
                                      f"{owner[key]} already")  # fmt: skip
                owner[key] = name
                doc["components"][kind][entry] = copy.deepcopy(body)
    return doc


@functools.cache
def _cached() -> dict[str, Any]:
    return merge(fragments())


def document() -> dict[str, Any]:
    """The merged document (a copy: callers may change it)."""
    return copy.deepcopy(_cached())
