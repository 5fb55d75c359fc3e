from __future__ import annotations

from pathlib import Path

import pytest

from store.errors import StoreError
from store.intel import IntelStore

V1 = {
    "type": "indicator",
    "id": "indicator--a932fcc6-e032-476c-826f-cb970a5a1ade",
    "modified": "2026-11-01T00:00:00.000Z",
    "pattern": "[ipv4-addr:value = '203.0.113.45']",
}
V2 = {**V1, "modified": "2026-11-10T00:00:00.000Z", "revoked": True}


def test_versions_are_kept_and_latest_is_the_newest(tmp_path: Path) -> None:
    intel = IntelStore(tmp_path / "citysoc.db")
    assert [s.modified for s in intel.put_objects([V1], "feed-a")] == [V1["modified"]]
    assert intel.put_objects([V1], "feed-a") == []  # re-import stores nothing
    assert len(intel.put_objects([V2], "feed-a")) == 1
    assert [v.modified for v in intel.versions(V1["id"])] == [V1["modified"], V2["modified"]]
    [latest] = list(intel.latest("indicator"))
    assert latest.doc["revoked"] is True
    assert intel.get(V1["id"]).modified == V2["modified"]
    assert intel.count() == 2
    intel.close()


def test_feed_cursor_round_trips_and_unknown_object_is_an_error(tmp_path: Path) -> None:
    intel = IntelStore(tmp_path / "citysoc.db")
    assert intel.added_after("taxii:x") is None
    intel.set_added_after("taxii:x", "2026-11-21T08:00:00.000000Z")
    intel.set_added_after("taxii:x", "2026-11-21T09:00:00.000000Z")
    assert intel.added_after("taxii:x") == "2026-11-21T09:00:00.000000Z"
    with pytest.raises(StoreError, match="indicator--nope"):
        intel.get("indicator--nope")
    with pytest.raises(StoreError, match="without id"):
        intel.put_objects([{"type": "indicator"}], "feed-a")
    intel.close()
