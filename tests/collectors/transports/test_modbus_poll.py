"""Modbus poller against a pymodbus TCP server holding BATADAL tank levels (first row of dataset03)."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from collectors.base import CollectorError
from collectors.pipeline import IngestPipeline
from collectors.spool import Spool
from collectors.transports.modbus_poll import ModbusPoller, ModbusPollError, PollTarget, RegisterBlock
from store.sqlite import SQLiteStore
from tests.helpers import REPO, T0, shared
from tests.services import free_port, wait_port

TANKS = ("L_T1", "L_T2", "L_T3", "L_T4", "L_T5", "L_T6", "L_T7")


def _levels() -> list[int]:
    with shared("batadal", "dataset03.csv").open(newline="") as fh:
        row = next(csv.DictReader(fh))
    return [round(float(row[t]) * 100) for t in TANKS]  # the PLC keeps centimetres in 16-bit registers


@pytest.fixture
def plc() -> Iterator[tuple[int, list[int]]]:
    levels = _levels()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.collectors.transports.modbus_plc", str(port),
                             *map(str, levels)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port, levels
    finally:
        proc.terminate()
        proc.wait(10)


def _clock() -> datetime:
    return T0


def test_poll_stores_tag_values_and_dead_letters_a_bad_block(plc: tuple[int, list[int]], tmp_path: Path,
                                                             store: SQLiteStore, pipeline: IngestPipeline) -> None:
    port, levels = plc
    target = PollTarget("plc-ps3", "127.0.0.1", (RegisterBlock(0, TANKS, unit="m", scale=0.01),
                                                 RegisterBlock(100, ("P_J280", "P_J269"), unit="m")),
                        port=port, process="pumping-station-3")
    spool = Spool(tmp_path / "spool")
    poller = ModbusPoller(spool, target, clock=_clock)
    try:
        assert poller.poll_once() == 7
        spool.drain(pipeline)
        assert poller.poll_once() == 7  # same poll time (frozen clock): the same ids, stored once
        spool.drain(pipeline)
    finally:
        poller.close()
        spool.close()
    events = {e.get("ot.tag.name"): e for e in store.iter_events()}
    assert store.count_events() == 7 and sorted(events) == sorted(TANKS)
    t1 = events["L_T1"]
    assert levels[0] == 51  # 0.509729922 m in dataset03's first row
    assert t1.get("ot.tag.value") == 0.51 and t1.get("ot.register.value") == 51.0
    assert (t1.get("ot.register.address"), t1.get("ot.unit_id"), t1.get("ot.plc.id")) == (0, 1, "plc-ps3")
    assert t1.get("ot.tag.unit") == "m" and t1.get("ot.process") == "pumping-station-3"
    assert t1.get("event.dataset") == "ot.modbus_poll" and t1.get("labels.source") == f"modbus:127.0.0.1:{port}/1"
    assert t1.get("@timestamp") == "2026-11-21T08:00:00.000000Z"
    assert events["L_T7"].get("ot.register.address") == 6
    dead = store.list_dead_letters()
    assert len(dead) == 1  # same poll time (frozen clock): the same source, offset and block, stored once
    assert dead[0].reason == "[modbus] plc-ps3 unit 1: exception 2 reading 2 registers at 100"


def test_unreachable_plc_is_an_infrastructure_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    poller = ModbusPoller(spool, PollTarget("plc-x", "127.0.0.1", (RegisterBlock(0, ("a",)),), port=free_port()),
                          timeout=0.5)
    try:
        with pytest.raises(ModbusPollError, match=r"cannot connect to plc-x at 127\.0\.0\.1"):
            poller.poll_once()
    finally:
        poller.close()
        spool.close()


def test_target_config_errors_say_where() -> None:
    with pytest.raises(CollectorError, match=r"modbus.json: targets\[0\]: missing key 'blocks'"):
        PollTarget.from_dict({"plc_id": "p", "host": "h"}, "modbus.json: targets[0]")
    with pytest.raises(CollectorError, match="runs past register 65535"):
        RegisterBlock(65535, ("a", "b"))
