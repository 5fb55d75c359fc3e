"""A simulated PLC for the poller test: a pymodbus TCP server whose holding registers hold tank levels.

Run as ``python -m tests.collectors.transports.modbus_plc <port> <value> ...``:
registers 0.. hold the values; anything past them answers "illegal data address".
"""

from __future__ import annotations

import sys

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import StartTcpServer


def main(port: int, values: list[int]) -> None:
    # pymodbus data blocks count from 1: block address 1 is protocol register 0
    device = ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, values))
    StartTcpServer(ModbusServerContext(devices={1: device}, single=False), address=("127.0.0.1", port))


if __name__ == "__main__":
    main(int(sys.argv[1]), [int(v) for v in sys.argv[2:]])
