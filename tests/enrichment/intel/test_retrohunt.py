from __future__ import annotations

from pathlib import Path

from enrichment.intel.feeds import import_bundle
from enrichment.intel.retrohunt import retrohunt
from store.intel import IntelStore
from store.sqlite import SQLiteStore
from tests.helpers import REPO, event

FEED = REPO / "tests" / "data" / "intel" / "city-feed.json"


def test_indicator_arriving_later_finds_the_past_event(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "citysoc.db")
    past = event(0, {"source.ip": "10.20.1.42", "destination.ip": "203.0.113.45", "destination.port": 23})
    other = event(60, {"source.ip": "10.20.1.42", "destination.ip": "8.8.8.8"})
    store.put_events([past, other])
    intel = IntelStore(store.path)
    result = import_bundle(FEED, intel)
    assert len(result.new_indicators) == 6
    hits = list(retrohunt(store, result.new_indicators, result.feed))
    assert [h.event.id for h in hits] == [past.id]
    assert hits[0].event.get("threat.indicator.name") == "Mirai C2 server"
    assert hits[0].event.get("threat.feed.name") == "file:city-feed.json"
    # the second import of the same bundle brings nothing new, so nothing to hunt
    again = import_bundle(FEED, intel)
    assert again.new == [] and list(retrohunt(store, again.new_indicators)) == []
    intel.close()
    store.close()
