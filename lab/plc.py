"""A Modbus/TCP PLC simulator on 127.0.0.1 that runs the lab's tank process (:class:`lab.scada.Process`).

A real pymodbus TCP server (unit 1) serves the process tags as holding
registers (:data:`REGISTERS`: register = value / scale) and the pumps' stop
levels as writable setpoint registers (:data:`SETPOINTS`, in centimetres).
:meth:`PlcSimulator.tick` advances the process by 15-minute steps (compressed
time: a test ticks a day in a fraction of a second) with the setpoints that are
in the registers *now*, so a Modbus write by an operator -- or by an attack
scenario -- changes what the pumps do.  The CitySOC Modbus poller reads it
like any PLC: :meth:`PlcSimulator.poll_target` is its configuration.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Sequence
from datetime import datetime

from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors.transports.modbus_poll import PollTarget, RegisterBlock
from lab.scada import STEP, TAGS, UNITS, Process
from lab.telemetry import Record

#: tag -> scale (register value = tag value / scale); registers 0.. in :data:`lab.scada.TAGS` order
SCALES: dict[str, float] = {"L": 0.01, "F": 0.1, "S": 1.0, "P": 0.01, "D": 0.1}
REGISTERS: dict[str, tuple[int, float]] = {tag: (i, SCALES[tag[0]]) for i, tag in enumerate(TAGS)}
#: writable stop levels of pump 1 and pump 2, in centimetres
SETPOINTS: dict[str, int] = {"SP_HIGH_PU1": 20, "SP_HIGH_PU2": 21}
READ_HOLDING, WRITE_MULTIPLE = 3, 16
UNIT = 1


class PlcError(Exception):
    """The simulator cannot start or answer; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PlcSimulator:
    """One simulated PLC; ``with PlcSimulator(seed) as plc: plc.tick(96)`` runs a day of the process."""

    def __init__(self, seed: int = 7, port: int | None = None, plc_id: str = "plc-ctown-1") -> None:
        self.process = Process(seed)
        self.port = port or free_port()
        self.plc_id = plc_id
        self._server: ModbusTcpServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"plc-{plc_id}", daemon=True)
        self.last: Sequence[float] = ()

    @property
    def server(self) -> ModbusTcpServer:
        if self._server is None:
            raise PlcError("the PLC simulator is not started")
        return self._server

    async def _serve(self) -> None:
        # pymodbus binds its transport to the running loop: the server is made inside it
        device = SimDevice(UNIT, [SimData(0, count=32, values=0, datatype=DataType.REGISTERS)])
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    def _call(self, coro: object, timeout: float = 10.0) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                deadline.wait(0.05)
        else:
            raise PlcError(f"the PLC simulator did not listen on 127.0.0.1:{self.port} within {timeout} s")
        high = [round(v * 100) for v in self.process.high]
        self._call(self.server.async_setValues(UNIT, WRITE_MULTIPLE, SETPOINTS["SP_HIGH_PU1"], high))
        self.tick(1)

    def stop(self) -> None:
        if self._thread.is_alive() and self._server is not None:
            self._call(self._server.shutdown())
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> PlcSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def setpoints(self) -> tuple[float, float]:
        """The stop levels in the registers now (metres)."""
        raw = self._call(self.server.async_getValues(UNIT, READ_HOLDING, SETPOINTS["SP_HIGH_PU1"], 2))
        assert isinstance(raw, list)
        return float(raw[0]) / 100, float(raw[1]) / 100

    def tick(self, steps: int = 1) -> Sequence[float]:
        """Advance ``steps`` 15-minute steps with the current setpoints; publish the last row in the registers."""
        for _ in range(steps):
            self.last = tuple(float(v) for v in self.process.step(self.setpoints()))
        regs = [max(0, min(0xFFFF, round(v / REGISTERS[tag][1]))) for tag, v in zip(TAGS, self.last, strict=True)]
        self._call(self.server.async_setValues(UNIT, WRITE_MULTIPLE, 0, regs))
        return self.last

    def poll_target(self) -> PollTarget:
        """The collector's configuration for this PLC: one block per tag kind, with its unit and scale."""
        blocks = []
        for tag, (address, scale) in REGISTERS.items():
            blocks.append(RegisterBlock(address, (tag,), UNITS[tag[0]], scale))
        return PollTarget(self.plc_id, "127.0.0.1", tuple(blocks), port=self.port, unit_id=UNIT, process="lab-tanks")

    def drive(self, records: Sequence[Record], start: datetime, end: datetime) -> list[tuple[float, ...]]:
        """Run the process from ``start`` to ``end``, sending each Modbus register write among ``records`` to
        this PLC over Modbus/TCP when its time comes (as an attack scenario's writes); the rows of every step."""
        writes = sorted(w for w in (modbus_write(r) for r in records) if w is not None)
        client = ModbusTcpClient("127.0.0.1", port=self.port)
        if not client.connect():
            raise PlcError(f"cannot connect to the PLC simulator on 127.0.0.1:{self.port}")
        rows: list[tuple[float, ...]] = []
        try:
            now = start
            while now < end:
                while writes and writes[0][0] <= now:
                    _, address, value = writes.pop(0)
                    reply = client.write_register(address, value, device_id=UNIT)
                    if reply.isError():
                        raise PlcError(f"the PLC refused a write of {value} to register {address}: {reply}")
                rows.append(tuple(self.tick()))
                now += STEP
        finally:
            client.close()
        return rows


def modbus_write(record: Record) -> tuple[datetime, int, int] | None:
    """(time, register, value) of a Zeek ``modbus_detailed`` single-register write request, else None."""
    if record.channel != "zeek" or '"modbus_detailed"' not in record.line:
        return None
    row = json.loads(record.line)
    if row.get("func") != "WRITE_SINGLE_REGISTER" or not row.get("is_orig"):
        return None
    return record.ts, int(row["address"]), int(row["values"])
