"""TAXII 2.1 pull against a real medallion server started on 127.0.0.1 by the test."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from taxii2client.v21 import Collection

from enrichment.intel.errors import IntelError
from enrichment.intel.feeds import pull_taxii
from store.intel import IntelStore
from tests.services import free_port, wait_port

COLLECTION = "365fed99-08fa-fdcd-a1b3-fb247eb41d01"
USER, PASSWORD = "soc", "taxii-test-pass"


def _indicator(n: int) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": "2026-11-20T00:00:00.000Z",
        "modified": "2026-11-20T00:00:00.000Z",
        "name": f"C2 node {n}",
        "pattern": f"[ipv4-addr:value = '203.0.113.{n}']",
        "pattern_type": "stix",
        "valid_from": "2026-11-20T00:00:00Z",
    }


@pytest.fixture
def medallion(tmp_path: Path) -> Iterator[str]:
    """A medallion TAXII 2.1 server with a memory backend; yields the collection URL."""
    port = free_port()
    root = f"http://127.0.0.1:{port}/trustgroup1/"
    data = {
        "/discovery": {"title": "CitySOC test TAXII", "default": root, "api_roots": [root]},
        "trustgroup1": {
            "information": {
                "title": "Test trust group",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 9765625,
            },
            "status": [],
            "collections": [
                {
                    "id": COLLECTION,
                    "title": "City indicators",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }
            ],
        },
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(tmp_path / "data.json"),
        },
        "users": {USER: PASSWORD},
        "taxii": {"max_page_size": 100},
    }
    (tmp_path / "medallion.json").write_text(json.dumps(config))
    log = (tmp_path / "medallion.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medallion.scripts.run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            str(tmp_path / "medallion.json"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port)
        yield f"{root}collections/{COLLECTION}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _publish(url: str, numbers: range) -> None:
    bundle = {
        "type": "bundle",
        "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [_indicator(n) for n in numbers],
    }
    Collection(url, user=USER, password=PASSWORD).add_objects(json.dumps(bundle))


def test_pull_follows_pages_and_then_only_asks_for_what_is_new(medallion: str, tmp_path: Path) -> None:
    intel = IntelStore(tmp_path / "citysoc.db")
    _publish(medallion, range(1, 11))
    first = pull_taxii(medallion, intel, USER, PASSWORD, per_request=4)
    assert first.pages == 3  # 4 + 4 + 2: paging with 'next' was followed
    assert len(first.new_indicators) == 10 and first.errors == []
    assert first.added_last is not None
    assert intel.added_after(first.feed) == first.added_last

    _publish(medallion, range(11, 13))
    second = pull_taxii(medallion, intel, USER, PASSWORD, per_request=4)
    assert second.seen == 2  # incremental: added_after = the last X-TAXII-Date-Added-Last
    assert sorted(o["name"] for o in second.new_indicators) == ["C2 node 11", "C2 node 12"]
    assert intel.count() == 12
    intel.close()


def test_bad_credentials_are_a_clear_error(medallion: str, tmp_path: Path) -> None:
    intel = IntelStore(tmp_path / "citysoc.db")
    with pytest.raises(IntelError, match=r"TAXII pull from .* failed"):
        pull_taxii(medallion, intel, USER, "wrong")
    intel.close()
