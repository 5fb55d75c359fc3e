"""The register as CSV, CRUD, extra identifiers and unknown-device candidates."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from enrichment.assets import Asset, AssetRegister, RegisterError, candidates
from store.sqlite import SQLiteStore
from tests.helpers import REPO, T0, event

CSV = REPO / "tests" / "data" / "enrichment" / "register.csv"


def test_csv_import_collects_every_bad_row_with_its_line() -> None:
    errors: list[str] = []
    register = AssetRegister.load(CSV, errors)
    assert [a.id for a in register] == ["water-plc-ps3", "scada-hmi-1", "env-sensor-17"]
    assert len(errors) == 2
    assert errors[0].startswith(f"{CSV}:5") and "1-5" in errors[0]
    assert errors[1].startswith(f"{CSV}:6") and "2026-13-40" in errors[1]
    plc = register.get("water-plc-ps3")
    assert plc.security_level == 4 and plc.level_decision == "123/QD-STTTT" and plc.last_drill == "2026-10-15"


def test_csv_import_without_collecting_stops_at_the_first_bad_row() -> None:
    with pytest.raises(RegisterError, match=r"register\.csv:5"):
        AssetRegister.load(CSV)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_register_round_trips(tmp_path: Path, suffix: str) -> None:
    register = AssetRegister.load(CSV, [])
    path = tmp_path / f"out{suffix}"
    register.dump(path)
    again = AssetRegister.load(path)
    assert list(again) == list(register)


def test_mac_and_mqtt_client_id_identify_the_asset() -> None:
    register = AssetRegister.load(CSV, [])
    assert register.match(event(fields={"host.mac": "00-1D-9C-C7-B0-11"})).id == "water-plc-ps3"  # type: ignore[union-attr]
    assert register.match(event(fields={"iot.mqtt.client_id": "aq-0017-client"})).id == "env-sensor-17"  # type: ignore[union-attr]


def test_crud_update_reindexes_and_a_refused_change_leaves_the_register_as_it_was() -> None:
    register = AssetRegister.load(CSV, [])
    plc = register.get("water-plc-ps3")
    moved = Asset.from_dict({**register.rows()[0], "ips": ["10.30.1.11"]})
    register.update(moved)
    assert register.by_ip("10.30.1.10") is None and register.by_ip("10.30.1.11") == moved
    row = next(r for r in register.rows() if r["id"] == "water-plc-ps3")
    clash = Asset.from_dict({**row, "ips": ["10.30.9.20"]})  # the HMI's address
    with pytest.raises(RegisterError, match="belongs to both"):
        register.update(clash)
    assert register.get("water-plc-ps3") == moved and register.by_ip("10.30.9.20").id == "scada-hmi-1"  # type: ignore[union-attr]
    register.remove("water-plc-ps3")
    assert len(register) == 2 and register.by_device("plc-ps3") is None
    with pytest.raises(RegisterError, match="no asset"):
        register.get(plc.id)


def test_bad_layer_is_refused() -> None:
    with pytest.raises(RegisterError, match="layer"):
        Asset("x", "n", "a", "s", "IT", 2, layer="cloud")


def test_unknown_devices_in_telemetry_are_candidates(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "citysoc.db")
    register = AssetRegister.load(CSV, [])
    store.put_events(
        [
            event(0, {"iot.device.id": "aq-0017", "source.ip": "10.40.3.17"}),  # registered
            event(1, {"iot.device.id": "aq-0099", "source.ip": "10.40.3.99", "iot.device.type": "sensor"}),
            event(2, {"iot.device.id": "aq-0099", "source.ip": "10.40.3.99", "event.dataset": "iot.platform"}),
            event(3, {"source.ip": "203.0.113.45", "destination.ip": "10.30.1.10"}),  # outside peer, registered PLC
        ]
    )
    found = {(c.kind, c.value): c for c in candidates(store, register)}
    assert set(found) == {("device", "aq-0099"), ("ip", "10.40.3.99")}
    sensor = found[("device", "aq-0099")]
    assert sensor.count == 2 and sensor.hints["iot.device.type"] == "sensor"
    assert sensor.datasets == ("iot.platform",) and sensor.first_seen == T0 + timedelta(seconds=1)
    store.close()
