from __future__ import annotations

from pathlib import Path

from collectors.pipeline import IngestPipeline
from detections.incidents import IncidentManager
from detections.intel import RULE_ID, IntelAlerter
from enrichment.assets import Asset, AssetEnricher, AssetRegister
from enrichment.intel.enricher import IndicatorEnricher, load_index
from enrichment.intel.feeds import import_bundle
from enrichment.intel.retrohunt import retrohunt
from store.intel import IntelStore
from store.models import Severity
from store.sqlite import SQLiteStore
from tests.helpers import REPO, T0, event

FEED = REPO / "tests" / "data" / "intel" / "city-feed.json"
PLC = Asset(
    "water-plc-ps3",
    "Pumping station 3 PLC",
    "Hanoi Water Company",
    "water",
    "OT",
    4,
    "critical",
    ips=("10.30.1.10",),
    device_ids=("plc-ps3",),
)
# the registered PLC talking to a known C2 address
BEACON = {"source.ip": "10.30.1.10", "destination.ip": "203.0.113.45", "destination.port": 443, "ot.plc.id": "plc-ps3"}


def test_live_match_on_a_registered_plc_opens_an_incident_with_agency_sector_and_level(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "citysoc.db")
    intel = IntelStore(store.path)
    import_bundle(FEED, intel)
    alerter = IntelAlerter(store, IncidentManager(store, clock=lambda: T0), clock=lambda: T0)
    enrichers = [AssetEnricher(AssetRegister([PLC])), IndicatorEnricher(load_index(intel))]
    pipeline = IngestPipeline(store, enrichers=enrichers, listeners=[alerter])
    raw = event(5, BEACON)
    for enricher in enrichers:
        raw = enricher.enrich(raw)
    pipeline.flush([raw, enrichers[0].enrich(event(6, {"source.ip": "10.30.1.10", "destination.ip": "8.8.8.8"}))])
    [alert] = store.list_alerts()
    assert alert.source == "intel" and alert.rule_id == RULE_ID
    assert "Mirai C2 server" in alert.rule_title
    [incident] = store.list_incidents()
    assert incident.entities["asset.agency"] == ("Hanoi Water Company",)
    assert incident.entities["asset.sector"] == ("water",)
    assert incident.entities["asset.security_level"] == ("4",)
    assert incident.severity is Severity.CRITICAL  # high, raised one step for a critical, level-4 system
    intel.close()
    store.close()


def test_retro_hunt_hit_becomes_an_alert_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "citysoc.db")
    intel = IntelStore(store.path)
    enricher = AssetEnricher(AssetRegister([PLC]))
    store.put_events([enricher.enrich(event(0, BEACON))])  # stored before anyone knew the address
    alerter = IntelAlerter(store, IncidentManager(store, clock=lambda: T0), clock=lambda: T0)
    assert store.count_alerts() == 0
    result = import_bundle(FEED, intel)
    alerts = alerter.on_hits(retrohunt(store, result.new_indicators, result.feed))
    assert len(alerts) == 1 and "retro-hunt" in alerts[0].description
    assert store.list_incidents()[0].entities["asset.id"] == ("water-plc-ps3",)
    # hunting again (e.g. after a restart) does not duplicate the alert
    assert alerter.on_hits(retrohunt(store, result.new_indicators, result.feed)) == []
    assert store.count_alerts() == 1
    intel.close()
    store.close()
