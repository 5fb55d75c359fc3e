"""The lab demo, end to end on real paths.

Benign city telemetry and the labelled attack chain of :mod:`lab.scenario`
are sent over syslog UDP and TCP to a real collector on 127.0.0.1 and written
as JSON-lines / Zeek log files that file collectors read; events are enriched
from the lab city's register, stored, matched by the Sigma rule pack, grouped
into incidents, and playbooks run on a real Celery worker process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from collectors.base import get_parser
from collectors.transports.files import FileCollector
from collectors.transports.syslog import SyslogServer
from console.runtime import Runtime, assets_path, build_runtime
from enrichment.assets import AssetRegister
from lab import city, scenario
from store.models import RunStatus
from store.registry import home

log = logging.getLogger(__name__)

MARKER = ".citysoc-demo"
CITY_FILE = city.CITY_FILE
FILE_PARSERS = {
    scenario.CAMERA_FILE: "camera.platform",
    scenario.MODBUS_FILE: "zeek",
    scenario.CONN_FILE: "zeek",
    scenario.MQTT_FILE: "iot.mqtt",
}


class DemoError(Exception):
    """The demo cannot run; the message says why and what to do."""


@dataclass
class DemoResult:
    events: int
    alerts: int
    incidents: int
    playbook_runs: int
    mttd_seconds: float | None
    dead_letters: int
    runs_succeeded: int

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "alerts": self.alerts,
            "incidents": self.incidents,
            "playbook_runs": self.playbook_runs,
            "mttd_seconds": self.mttd_seconds,
        }


def load_city(path: Path = CITY_FILE) -> AssetRegister:
    """The lab city's system register (see :mod:`lab.city`)."""
    return city.load_city(path).register


def prepare_home(root: Path) -> None:
    """Start from an empty demo home; refuse to touch a home that holds other data."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    contents = [p for p in root.iterdir() if p.name not in (MARKER, "secret_key")]
    if contents and not marker.exists():
        raise DemoError(f"{root} holds data that the demo did not create; point CITYSOC_HOME at an empty directory")
    for path in contents:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    marker.write_text("created by citysoc demo; its contents are replaced on every demo run\n")


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A real Celery worker process (the same as ``citysoc worker``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "console.cli", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr,  # stdout carries the demo's JSON summary only
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # Celery's warm shutdown stops its pool children itself
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def send_syslog(emissions: Iterable[scenario.Emission], udp: tuple[str, int], tcp: tuple[str, int]) -> int:
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as usock, socket.create_connection(tcp, timeout=10) as tsock:
        for emission in emissions:
            data = emission.line.encode("utf-8")
            if emission.channel == scenario.SYSLOG_UDP:
                usock.sendto(data, udp)
            else:
                tsock.sendall(f"{len(data)} ".encode() + data)  # RFC 6587 octet counting
            sent += 1
    return sent


def write_files(emissions: Iterable[scenario.Emission], spool: Path) -> None:
    spool.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}
    try:
        for emission in emissions:
            fh = handles.get(emission.channel)
            if fh is None:
                fh = handles[emission.channel] = (spool / emission.channel).open("a", encoding="utf-8")
            fh.write(emission.line + "\n")
    finally:
        for fh in handles.values():
            fh.close()


def deliver(
    runtime: Runtime,
    emissions: list[scenario.Emission],
    server: SyslogServer,
    collectors: dict[str, FileCollector],
    spool: Path,
) -> None:
    assert server.udp_address and server.tcp_address
    syslog = [e for e in emissions if e.channel in (scenario.SYSLOG_UDP, scenario.SYSLOG_TCP)]
    send_syslog(syslog, server.udp_address, server.tcp_address)
    write_files([e for e in emissions if e.channel in FILE_PARSERS], spool)
    for channel in FILE_PARSERS:
        collectors[channel].run_once()


def wait_for_runs(runtime: Runtime, worker: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runtime.store.list_runs(limit=1000)
        # a run waiting for a person's approval does not move on by itself: it is settled for the demo
        if all(r.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.WAITING) for r in runs):
            return
        if worker.poll() is not None:
            raise DemoError(f"the Celery worker exited with code {worker.returncode} before the playbooks finished")
        time.sleep(0.2)
    raise DemoError(f"playbook runs did not finish within {timeout:.0f} s; is the worker able to reach the broker?")


def run_demo(seed: int = 7, benign_minutes: int = 10) -> DemoResult:
    root = home()
    prepare_home(root)
    load_city().dump(assets_path())
    runtime = build_runtime(name="citysoc-lab-demo")
    env = dict(os.environ, CITYSOC_HOME=str(root))
    worker = start_worker(env)
    spool = root / "lab" / "spool"
    try:
        collectors = {
            channel: FileCollector(runtime.pipeline, get_parser(parser), spool / channel, root / "state")
            for channel, parser in FILE_PARSERS.items()
        }
        server = SyslogServer(runtime.pipeline, get_parser("syslog"), host="127.0.0.1")
        server.start()
        try:
            now = datetime.now(timezone.utc)
            deliver(
                runtime,
                scenario.benign(seed, now - timedelta(minutes=benign_minutes), benign_minutes),
                server,
                collectors,
                spool,
            )
            deliver(runtime, scenario.attack(seed, datetime.now(timezone.utc)), server, collectors, spool)
        finally:
            server.stop()
        wait_for_runs(runtime, worker)
    finally:
        stop_worker(worker)
    store = runtime.store
    incidents = store.list_incidents(limit=1000)
    mttds = [i.mttd_seconds for i in incidents if i.mttd_seconds is not None]
    runs = store.list_runs(limit=1000)
    result = DemoResult(
        events=store.count_events(),
        alerts=store.count_alerts(),
        incidents=len(incidents),
        playbook_runs=len(runs),
        mttd_seconds=round(min(mttds), 3) if mttds else None,
        dead_letters=store.count_dead_letters(),
        runs_succeeded=sum(1 for r in runs if r.status is RunStatus.SUCCEEDED),
    )
    runtime.close()
    log.info("demo finished: %s", json.dumps(result.summary()))
    return result
