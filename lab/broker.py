"""A throw-away Mosquitto MQTT broker on 127.0.0.1 for the lab (``citysoc lab broker``, tests, load runs)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from lab.plc import free_port


class BrokerError(Exception):
    """Mosquitto is missing or did not start; the message says how to fix it."""


def mosquitto_binary() -> str:
    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        raise BrokerError("mosquitto is not installed: apt-get install -y mosquitto")
    return binary


@contextlib.contextmanager
def mosquitto(port: int | None = None, timeout: float = 10.0) -> Iterator[int]:
    """Run Mosquitto (anonymous, no persistence) on 127.0.0.1; yields its port and stops it afterwards."""
    binary = mosquitto_binary()
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="citysoc-mosquitto-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n", encoding="utf-8")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{port}: {err.strip()}") from None
                    time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
