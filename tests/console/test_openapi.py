"""The OpenAPI document: merged from fragments, matches the routes exactly, and fuzzing it finds no server error."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from console import openapi
from console.api import PREFIX
from console.auth import create_user
from console.services import ConfigError, store_of
from console.tokens import create_token
from tests.console import HOSTILE, PASSWORD, seed_incident
from tests.console import console_app as make_app

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with make_app(tmp_path) as app:
        yield app


def routes(app: Flask) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            path = re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule.rule[len(PREFIX) :])
            out.update((method.lower(), path) for method in (rule.methods or set()) - {"HEAD", "OPTIONS"})
    return out


def documented(doc: dict[str, object]) -> set[tuple[str, str]]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(method, path) for path, item in paths.items() for method in item if method in METHODS}


def test_every_api_route_is_documented_and_every_documented_route_exists(app: Flask) -> None:
    served = app.test_client()
    create_user(store_of(app), "reader", PASSWORD, ("inspector",))
    served.post("/login", data={"username": "reader", "password": PASSWORD,
                                "csrf_token": _token(served.get("/login").get_data(as_text=True))})  # fmt: skip
    doc = served.get(PREFIX + "/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": PREFIX}]
    assert routes(app) - documented(doc) == set(), "routes missing from console/openapi/*.yml"
    assert documented(doc) - routes(app) == set(), "documented operations without a route"
    assert len(routes(app)) >= 15
    ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_the_merger_refuses_duplicates_and_unknown_keys() -> None:
    part = {"paths": {"/x": {"get": {"responses": {"200": {"description": "ok"}}}}},
            "components": {"schemas": {"X": {"type": "object"}}}}  # fmt: skip
    merged = openapi.merge([("a.yml", part)])
    assert set(merged["paths"]) == {"/x"} and "X" in merged["components"]["schemas"]
    with pytest.raises(ConfigError, match=r"b.yml: path /x is defined in a.yml already"):
        openapi.merge([("a.yml", part), ("b.yml", {"paths": part["paths"]})])
    with pytest.raises(ConfigError, match=r"b.yml: components.schemas.X is defined in a.yml already"):
        openapi.merge([("a.yml", part), ("b.yml", {"components": part["components"]})])
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        openapi.merge([("c.yml", {"info": {}})])
    assert "core.yml" in dict(openapi.fragments())


def test_generated_requests_never_get_a_server_error(app: Flask) -> None:
    """Schemathesis generates requests from the served document for every operation (as admin, by API token)."""
    store = store_of(app)
    seed_incident(store, HOSTILE)
    admin = create_user(store, "root1", PASSWORD, ("admin",))
    secret = create_token(store, admin, admin, "schemathesis", ("admin",)).secret
    headers = {"Authorization": f"Bearer {secret}"}
    schema = schemathesis.openapi.from_dict(openapi.document())
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        fuzz(app, result.ok(), headers, statuses, failures)
    assert failures == []
    assert statuses[200] + statuses[201] > 15, statuses  # the token works: real answers, not only 4xx
    assert sum(statuses.values()) > 120


def fuzz(app: Flask, operation: Any, headers: dict[str, str], statuses: Counter[int], failures: list[str]) -> None:
    @given(case=operation.as_strategy(), real=st.booleans())
    @settings(max_examples=4, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case: schemathesis.Case, real: bool) -> None:
        # half the cases address the seeded incident, so the handlers run beyond "not found"
        if real and case.path_parameters and "incident_id" in case.path_parameters:
            case.path_parameters["incident_id"] = "inc-1"
        response = case.call(app=app, headers=headers)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{operation.label}: {response.status_code} {response.text[:300]}")

    run()
