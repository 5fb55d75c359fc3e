from __future__ import annotations

from pathlib import Path

from enrichment.intel.enricher import enricher_for
from enrichment.intel.feeds import import_bundle
from store.intel import IntelStore
from store.sqlite import SQLiteStore
from tests.helpers import REPO, event

FEED = REPO / "tests" / "data" / "intel" / "city-feed.json"
C2 = {"destination.ip": "203.0.113.45"}


def test_enricher_picks_up_indicators_imported_after_it_started(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "citysoc.db")
    enricher = enricher_for(store)
    assert enricher is not None
    enricher.refresh_seconds = 0  # check on every event, as if the interval had passed
    assert enricher.enrich(event(0, C2)).get("threat.indicator.id") is None
    intel = IntelStore(store.path)
    import_bundle(FEED, intel)  # e.g. `citysoc intel import` in another process
    assert enricher.enrich(event(1, C2)).get("threat.indicator.name") == "Mirai C2 server"
    intel.close()
    store.close()


def test_a_backend_without_intel_tables_turns_matching_off() -> None:
    assert enricher_for(object()) is None  # logged as a warning with the reason
