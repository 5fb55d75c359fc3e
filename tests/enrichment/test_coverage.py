"""Coverage: registered vs. reporting devices per area and domain."""

from __future__ import annotations

from datetime import timedelta

from collectors.base import RawRecord, get_parser
from collectors.pipeline import IngestPipeline
from enrichment.assets import Asset, AssetEnricher, AssetRegister
from enrichment.coverage import coverage, reporting_assets
from store.sqlite import SQLiteStore
from tests.helpers import REPO, T0

MQTT = REPO / "tests" / "data" / "collectors" / "mqtt.jsonl"


def test_reporting_devices_per_area_and_domain(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    register = AssetRegister([
        Asset("AQ-001", "Air sensor 1", "DONRE", "environment", "IoT", 2, area="ba-dinh", device_ids=("aq-001",)),
        Asset("AQ-002", "Air sensor 2", "DONRE", "environment", "IoT", 2, area="ba-dinh", device_ids=("aq-002",)),
        Asset("SL-0107", "Streetlight 107", "HAPULICO", "lighting", "IoT", 2, area="hoan-kiem",
              device_ids=("sl-0107",)),
        Asset("PS-3", "Pumping station 3", "HAWACO", "water", "OT", 4, area="cau-giay", ips=("10.30.3.10",)),
    ])
    store = SQLiteStore(tmp_path / "c.db")
    try:
        pipeline = IngestPipeline(store, enrichers=[AssetEnricher(register)])
        lines = MQTT.read_text().splitlines()
        pipeline.ingest([RawRecord(line, "file:mqtt.jsonl", str(i)) for i, line in enumerate(lines)],
                        get_parser("iot.mqtt"))
        seen = reporting_assets(store, T0 - timedelta(days=2))
        assert seen == {"AQ-001", "SL-0107"}  # aq-002's only message is a bad record
        rows = {(r.area, r.domain): r for r in coverage(register, seen)}
        assert (rows["ba-dinh", "IoT"].registered, rows["ba-dinh", "IoT"].reporting) == (2, 1)
        assert rows["ba-dinh", "IoT"].percent == 50.0 and rows["ba-dinh", "IoT"].silent == ("AQ-002",)
        assert rows["hoan-kiem", "IoT"].percent == 100.0
        assert rows["cau-giay", "OT"].percent == 0.0
    finally:
        store.close()
