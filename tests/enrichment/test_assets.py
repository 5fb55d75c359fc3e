from __future__ import annotations

from pathlib import Path

import pytest

from enrichment.assets import Asset, AssetEnricher, AssetRegister, RegisterError
from tests.helpers import event

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
CAM = Asset(
    "cam-0042", "Camera", "Department of Transport", "traffic", "IoT", 2, ips=("10.20.1.42",), device_ids=("cam-0042",)
)


def test_event_to_a_registered_plc_gets_agency_sector_and_level() -> None:
    enricher = AssetEnricher(AssetRegister([PLC, CAM]))
    e = enricher.enrich(event(fields={"source.ip": "10.20.5.66", "destination.ip": "10.30.1.10"}))
    assert e.get("asset.id") == "water-plc-ps3"
    assert e.get("asset.agency") == "Hanoi Water Company"
    assert e.get("asset.sector") == "water"
    assert e.get("asset.security_level") == 4
    assert e.get("asset.criticality") == "critical"


def test_device_id_wins_over_addresses() -> None:
    register = AssetRegister([PLC, CAM])
    e = event(fields={"iot.device.id": "CAM-0042", "destination.ip": "10.30.1.10"})
    assert register.match(e) == CAM


def test_unknown_events_are_unchanged() -> None:
    e = event(fields={"source.ip": "192.0.2.1"})
    assert AssetEnricher(AssetRegister([PLC])).enrich(e) is e


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "x", "name": "n", "agency": "a", "sector": "s", "domain": "OT", "security_level": 6}, "1-5"),
        ({"id": "x", "name": "n", "agency": "a", "sector": "s", "domain": "XX", "security_level": 2}, "domain"),
        (
            {
                "id": "x",
                "name": "n",
                "agency": "a",
                "sector": "s",
                "domain": "IT",
                "security_level": 2,
                "ips": ["nope"],
            },
            "not an IP",
        ),
    ],
)
def test_bad_assets_are_refused(row: dict[str, object], message: str) -> None:
    with pytest.raises(RegisterError, match=message):
        Asset.from_dict(row, where="register.yml: asset #1")


def test_duplicate_identifiers_are_refused() -> None:
    with pytest.raises(RegisterError, match="belongs to both"):
        AssetRegister([PLC, Asset("other", "o", "a", "s", "OT", 1, ips=("10.30.1.10",))])


def test_register_round_trips_through_json(tmp_path: Path) -> None:
    path = tmp_path / "assets.json"
    AssetRegister([PLC, CAM]).dump(path)
    loaded = AssetRegister.load(path)
    assert [a.id for a in loaded] == ["water-plc-ps3", "cam-0042"]
    assert loaded.get("water-plc-ps3") == PLC
