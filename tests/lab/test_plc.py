"""The PLC simulator: a real Modbus/TCP server that the collector polls and an attacker's write changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from collectors.pipeline import IngestPipeline
from collectors.spool import Spool
from collectors.transports.modbus_poll import ModbusPoller
from lab.plc import SETPOINTS, PlcSimulator
from lab.scada import TAGS
from store.sqlite import SQLiteStore


@pytest.fixture
def plc() -> Iterator[PlcSimulator]:
    with PlcSimulator(seed=4) as sim:
        yield sim


def test_the_poller_reads_the_process_tags(plc: PlcSimulator, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    spool = Spool(tmp_path / "spool")
    poller = ModbusPoller(spool, plc.poll_target())
    try:
        plc.tick(3)
        assert poller.poll_once() == len(TAGS)
        spool.drain(IngestPipeline(store))
        events = store.search_events(filters={"ot.plc.id": "plc-ctown-1"}, limit=100)
        values = {e.get("ot.tag.name"): e.get("ot.tag.value") for e in events}
        assert set(values) == set(TAGS)
        assert values["L_T1"] == pytest.approx(plc.last[0], abs=0.006)
        assert values["S_PU1"] in (0.0, 1.0)
    finally:
        poller.close()
        spool.close()
        store.close()


def test_a_setpoint_write_changes_what_the_pumps_do(plc: PlcSimulator) -> None:
    plc.tick(96)  # a day under the operators' stop level of 4.0 m
    assert max(plc.tick()[0] for _ in range(96)) < 4.3
    client = ModbusTcpClient("127.0.0.1", port=plc.port)
    assert client.connect()
    try:
        assert not client.write_register(SETPOINTS["SP_HIGH_PU1"], 520, device_id=1).isError()
    finally:
        client.close()
    assert plc.setpoints()[0] == pytest.approx(5.2)
    # pump 1 now runs until the tank holds 5.2 m: within the tank's height, above anything the operators allow
    assert max(plc.tick()[0] for _ in range(2 * 96)) > 4.8


def test_the_setpoint_scenario_writes_to_the_live_plc(plc: PlcSimulator) -> None:
    from datetime import timedelta

    from lab.city import load_city
    from lab.scenario_spec import load_scenarios

    scenario = load_scenarios()["modbus-setpoint-within-range"]
    attack = scenario.attack_records(load_city(), 7)
    before = plc.drive([], scenario.start, scenario.attack_start)  # a day and two hours of normal operation
    after = plc.drive(attack, scenario.attack_start, scenario.attack_start + timedelta(hours=12))
    assert plc.setpoints() == pytest.approx((4.6, 3.4))  # the five writes arrived over Modbus/TCP
    level = TAGS.index("L_T1")
    assert max(r[level] for r in before) < 4.3
    assert max(r[level] for r in after) > 4.5  # pump 1 now fills tank 1 above the operators' stop level
