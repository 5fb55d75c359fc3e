from __future__ import annotations

import json
from pathlib import Path

import pytest
import stix2

from detections.incidents import IncidentManager
from detections.intel import IntelAlerter
from enrichment.intel.enricher import IndicatorEnricher, load_index
from enrichment.intel.errors import IntelError
from enrichment.intel.feeds import import_bundle
from enrichment.intel.sharing import export_incident, import_sightings
from store.intel import IntelStore
from store.sqlite import SQLiteStore
from tests.helpers import REPO, T0, event

FEED = REPO / "tests" / "data" / "intel" / "city-feed.json"


def _incident(tmp_path: Path) -> tuple[SQLiteStore, IntelStore, str]:
    store = SQLiteStore(tmp_path / "citysoc.db")
    intel = IntelStore(store.path)
    import_bundle(FEED, intel)
    enricher = IndicatorEnricher(load_index(intel))
    events = [
        enricher.enrich(
            event(s, {"source.ip": "10.20.1.42", "destination.ip": "203.0.113.45", "destination.port": 443})
        )
        for s in (0, 30)
    ]
    IntelAlerter(store, IncidentManager(store, clock=lambda: T0), clock=lambda: T0).on_events_stored(
        store.put_events(events)
    )
    return store, intel, store.list_incidents()[0].id


def test_export_validates_and_round_trips(tmp_path: Path) -> None:
    store, intel, incident_id = _incident(tmp_path)
    bundle = export_incident(store, intel, incident_id)
    kinds = sorted({o.type for o in bundle.objects})
    assert {"incident", "indicator", "observed-data", "sighting", "identity", "ipv4-addr"} <= set(kinds)
    [sighting] = [o for o in bundle.objects if o.type == "sighting"]
    assert sighting.sighting_of_ref == "indicator--a932fcc6-e032-476c-826f-cb970a5a1ade"
    assert sighting.count == 2
    text = bundle.serialize(sort_keys=True)
    again = stix2.parse(text, allow_custom=True)
    assert json.loads(again.serialize(sort_keys=True)) == json.loads(text)
    # deterministic: a second export is the same bundle apart from the bundle id
    second = export_incident(store, intel, incident_id)
    assert sorted(o.id for o in second.objects) == sorted(o.id for o in bundle.objects)
    intel.close()
    store.close()


def test_sightings_come_back_into_the_intel_store(tmp_path: Path) -> None:
    store, intel, incident_id = _incident(tmp_path)
    path = tmp_path / "export.json"
    path.write_text(export_incident(store, intel, incident_id).serialize())
    partner = IntelStore(tmp_path / "partner.db")
    sightings = import_sightings(path, partner)
    assert [s["sighting_of_ref"] for s in sightings] == ["indicator--a932fcc6-e032-476c-826f-cb970a5a1ade"]
    assert import_sightings(path, partner) == []  # same versions: nothing new
    partner.close()
    intel.close()
    store.close()


def test_unknown_incident_is_a_clear_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "citysoc.db")
    intel = IntelStore(store.path)
    with pytest.raises(IntelError, match="INC-NOPE"):
        export_incident(store, intel, "INC-NOPE")
    intel.close()
    store.close()
