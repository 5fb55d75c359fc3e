"""HTTP ingest: tokens, limits, per-line errors, durability before the 200, retries without duplicates."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.metrics import Metrics
from collectors.pipeline import IngestPipeline
from collectors.spool import Spool
from collectors.transports.http_ingest import HttpIngestApp, HttpIngestServer, TokenStore
from store.sqlite import SQLiteStore
from tests.helpers import REPO

CAMERA = REPO / "tests" / "data" / "collectors" / "camera.jsonl"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HttpIngestServer, str, Spool, Metrics]]:
    tokens = TokenStore(tmp_path / "tokens.json")
    token = tokens.issue("vms-hn-01", "camera.platform")
    spool = Spool(tmp_path / "spool", max_pending_bytes=200_000)
    metrics = Metrics()
    server = HttpIngestServer(HttpIngestApp(tokens, spool, metrics, max_body=100_000))
    server.start()
    yield server, token, spool, metrics
    server.stop()
    spool.close()


def _post(server: HttpIngestServer, body: bytes, token: str | None, path: str = "/v1/ingest",
          method: str = "POST") -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request(method, path, body, headers)
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload


def test_tokens_are_stored_only_as_hashes(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    token = tokens.issue("lgsp", "ecs.json")
    text = (tmp_path / "tokens.json").read_text()
    assert token not in text
    assert (tmp_path / "tokens.json").stat().st_mode & 0o077 == 0
    assert TokenStore(tmp_path / "tokens.json").authenticate(token) == tokens.sources()[0]
    assert tokens.authenticate(token + "x") is None
    replaced = tokens.issue("lgsp", "ecs.json")
    assert tokens.authenticate(token) is None and tokens.authenticate(replaced) is not None


def test_good_and_bad_lines_with_line_numbers(served: tuple[HttpIngestServer, str, Spool, Metrics],
                                              store: SQLiteStore, pipeline: IngestPipeline) -> None:
    server, token, spool, metrics = served
    body = CAMERA.read_bytes()  # lines 1-9 are good, 10-14 broken in five different ways
    status, payload = _post(server, body, token)
    assert status == 200
    lines = 9
    assert payload["accepted"] == lines
    assert [r["line"] for r in payload["rejected"]] == [10, 11, 12, 13, 14]
    assert "'10.20.5.300' is not an IP address" in payload["rejected"][2]["reason"]
    assert all(r["reason"].startswith(f"line {r['line']}: ") for r in payload["rejected"])
    assert store.count_events() == 0  # spooled, not yet stored
    spool.drain(pipeline)
    assert store.count_events() == lines
    assert store.count_dead_letters() == 5
    dead = store.list_dead_letters()
    assert sorted(int(d.offset.split(":")[1]) for d in dead) == [10, 11, 12, 13, 14]
    assert {d.source for d in dead} == {"http:vms-hn-01"}
    snapshot = metrics.snapshot()
    assert snapshot[("http:vms-hn-01", "spooled")] == lines
    assert snapshot[("http:vms-hn-01", "rejected")] == 5
    # the client retries the same batch (it never saw the 200): same offsets, same ids, no duplicates
    assert _post(server, body, token)[0] == 200
    spool.drain(pipeline)
    assert store.count_events() == lines


@pytest.mark.parametrize(
    ("token", "path", "method", "body", "status"),
    [
        (None, "/v1/ingest", "POST", b"{}\n", 401),
        ("wrong-token", "/v1/ingest", "POST", b"{}\n", 401),
        ("ok", "/v2/other", "POST", b"{}\n", 404),
        ("ok", "/v1/ingest", "GET", None, 405),
        ("ok", "/v1/ingest", "POST", b"x" * 100_001, 413),
        ("ok", "/v1/ingest", "POST", b"\xff\xfe{}\n", 400),
    ],
)
def test_refusals(served: tuple[HttpIngestServer, str, Spool, Metrics], token: str | None, path: str,
                  method: str, body: bytes | None, status: int) -> None:
    server, good_token, spool, _ = served
    got, payload = _post(server, body or b"", good_token if token == "ok" else token, path, method)
    assert got == status
    assert payload["error"]
    assert spool.pending_bytes() == 0


def test_full_spool_answers_503_and_keeps_nothing_half(served: tuple[HttpIngestServer, str, Spool, Metrics],
                                                       store: SQLiteStore, pipeline: IngestPipeline) -> None:
    server, token, spool, _ = served
    body = CAMERA.read_bytes()
    statuses = [_post(server, body, token)[0] for _ in range(60)]
    assert statuses[0] == 200 and statuses[-1] == 503
    accepted = statuses.count(200)
    spool.drain(pipeline)
    assert spool.pending_bytes() == 0
    assert _post(server, body + b"\n", token)[0] == 200  # room again once drained
    assert store.count_events() == 9  # retries of one batch are one set of events
    assert accepted >= 2
