"""Modbus/TCP poller: reads holding registers from a PLC or simulator and records them as SCADA tag values.

A :class:`PollTarget` names a PLC (host, port, unit id, ``ot.plc.id``,
``ot.process``) and its :class:`RegisterBlock`\\ s: a start address, a count and
one tag name per register, with an engineering unit and a scale (a register
holding ``312`` with scale ``0.01`` is 3.12 m).  Each poll reads every block with
function 3 (read holding registers) and writes one CitySOC event document per
register -- ``ot.tag.*``, ``ot.register.*``, ``ot.plc.id``, ``ot.unit_id`` -- to
the spool for the ``ecs.json`` parser.  The event id is derived from the PLC,
unit, address and poll time, so a spool replay stores nothing twice.

Failure paths: a Modbus exception response for one block (illegal address and
the like) is that block's bad record -- a dead letter with the block and the
exception code, the other blocks go on; a PLC that cannot be reached is broken
infrastructure -- :meth:`ModbusPoller.poll_once` raises :class:`ModbusPollError`
and :meth:`ModbusPoller.run` logs it, counts it and retries with back-off (the
source-health monitor raises "source silent" if it lasts).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from collectors.base import CollectorError, RawRecord
from collectors.metrics import Metrics
from collectors.spool import Rejected, Spool
from store.event import format_ts, stable_id

log = logging.getLogger(__name__)

PARSER = "ecs.json"
DATASET = "ot.modbus_poll"
MAX_BLOCK = 125  # registers per read request (Modbus application protocol, function 3)


class ModbusPollError(CollectorError):
    """The PLC could not be polled (connection refused, timeout)."""


@dataclass(frozen=True)
class RegisterBlock:
    address: int
    tags: tuple[str, ...]
    unit: str = ""
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF or not 1 <= len(self.tags) <= MAX_BLOCK:
            raise CollectorError(f"register block at {self.address}: address must be 0-65535 and the block "
                                 f"1-{MAX_BLOCK} tags long")
        if self.address + len(self.tags) > 0x10000:
            raise CollectorError(f"register block at {self.address}: runs past register 65535")


@dataclass(frozen=True)
class PollTarget:
    plc_id: str
    host: str
    blocks: tuple[RegisterBlock, ...]
    port: int = 502
    unit_id: int = 1
    process: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> PollTarget:
        try:
            blocks = tuple(RegisterBlock(int(b["address"]), tuple(b["tags"]), str(b.get("unit", "")),
                                         float(b.get("scale", 1.0))) for b in data["blocks"])
            return cls(str(data["plc_id"]), str(data["host"]), blocks, int(data.get("port", 502)),
                       int(data.get("unit_id", 1)), str(data.get("process", "")))
        except KeyError as exc:
            raise CollectorError(f"{where}: missing key {exc}") from exc
        except (TypeError, ValueError, CollectorError) as exc:
            raise CollectorError(f"{where}: {exc}") from exc


class ModbusPoller:
    """Polls one target every ``interval`` seconds into ``spool``."""

    def __init__(self, spool: Spool, target: PollTarget, interval: float = 10.0, metrics: Metrics | None = None,
                 timeout: float = 3.0, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if interval <= 0:
            raise CollectorError("modbus poller: interval must be positive")
        self.spool = spool
        self.target = target
        self.interval = interval
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.source = f"modbus:{target.host}:{target.port}/{target.unit_id}"
        self._client = ModbusTcpClient(target.host, port=target.port, timeout=timeout, retries=1)

    def poll_once(self) -> int:
        """Read every block once and spool the values; returns the number of registers read."""
        t = self.target
        if not self._client.connected and not self._client.connect():
            raise ModbusPollError(f"modbus poller: cannot connect to {t.plc_id} at {t.host}:{t.port}")
        polled = self.clock()
        items: list[RawRecord | Rejected] = []
        read = 0
        for block in t.blocks:
            offset = f"{t.unit_id}:{block.address}:{format_ts(polled)}"
            try:
                response = self._client.read_holding_registers(block.address, count=len(block.tags),
                                                               device_id=t.unit_id)
            except ModbusException as exc:
                self._client.close()
                raise ModbusPollError(f"modbus poller: {t.plc_id} at {t.host}:{t.port}: {exc}") from exc
            if response.isError():
                code = getattr(response, "exception_code", None)
                items.append(Rejected(self.source, offset, f"[modbus] {t.plc_id} unit {t.unit_id}: exception "
                                      f"{code} reading {len(block.tags)} registers at {block.address}",
                                      json.dumps({"address": block.address, "count": len(block.tags)})))
                continue
            for index, (tag, raw) in enumerate(zip(block.tags, response.registers, strict=True)):
                items.append(self._record(block, block.address + index, tag, raw, polled))
                read += 1
        self.metrics.inc(self.source, "received", len(items))
        self.spool.append(items, PARSER)
        self.metrics.inc(self.source, "spooled", read)
        self.metrics.inc(self.source, "rejected", len(items) - read)
        return read

    def _record(self, block: RegisterBlock, address: int, tag: str, raw: int, polled: datetime) -> RawRecord:
        t = self.target
        value = raw * block.scale
        doc: dict[str, Any] = {
            "@timestamp": format_ts(polled),
            "event.id": stable_id(DATASET, t.plc_id, str(t.unit_id), str(address), format_ts(polled)),
            "event.kind": "metric", "event.category": ["ot"], "event.type": ["info"],
            "event.action": "read_holding_registers", "event.dataset": DATASET, "event.module": "modbus_poll",
            "network.protocol": "modbus", "ot.protocol": "modbus", "ot.function": "read_holding_registers",
            "ot.function_code": 3, "ot.unit_id": t.unit_id, "ot.plc.id": t.plc_id,
            "ot.register.address": address, "ot.register.value": raw,
            "ot.tag.name": tag, "ot.tag.value": round(value, 9), "ot.tag.quality": "good",
            "destination.ip": t.host if _is_ip(t.host) else None, "destination.port": t.port,
            "message": f"{t.plc_id} {tag} = {value:g}{(' ' + block.unit) if block.unit else ''}",
        }
        if block.unit:
            doc["ot.tag.unit"] = block.unit
        if t.process:
            doc["ot.process"] = t.process
        doc = {k: v for k, v in doc.items() if v is not None}
        return RawRecord(json.dumps(doc, sort_keys=True), self.source, f"{t.unit_id}:{address}:{format_ts(polled)}",
                         received=polled, peer=f"{t.host}:{t.port}")

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; an unreachable PLC is logged and retried with back-off."""
        delay = self.interval
        while not stop.is_set():
            try:
                self.poll_once()
                delay = self.interval
            except ModbusPollError as exc:
                log.error("%s", exc)
                delay = min(delay * 2, max(self.interval, 300.0))
            stop.wait(delay)
        self.close()

    def close(self) -> None:
        self._client.close()


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def load_targets(path: str | Path) -> list[PollTarget]:
    """Targets from a JSON file ``{"targets": [...]}``; errors name the file and the entry."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
        items = doc["targets"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CollectorError(f"{path}: expected {{\"targets\": [...]}}: {exc}") from exc
    return [PollTarget.from_dict(item, f"{path}: targets[{i}]") for i, item in enumerate(items)]
