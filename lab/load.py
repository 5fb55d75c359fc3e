"""The load generator: mixed city telemetry sent to running collectors at a steady rate, with bursts.

Lines come from the benign generators (:mod:`lab.telemetry`), produced lazily
in 5-second windows of simulated time that start when the run starts, so event ids never
repeat and timestamps look live.  Each channel goes where a collector takes it:
syslog lines alternate between syslog over UDP and TCP (RFC 6587 octet
counting), MQTT telemetry is published to a broker (QoS 0, the device topic
and the payload with its ``ts``), and the other channels are POSTed as NDJSON
batches to the HTTP ingest endpoint with the bearer token issued for that
channel's parser.  A channel without a target is not generated.

Pacing is open-loop: every 50 ms the generator sends what the schedule says
should have been sent by then (``eps``, times ``burst.factor`` during a
burst), so a slow collector shows up as a lower *achieved* rate, not a slower
schedule.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lab.city import City, load_city
from lab.telemetry import CHANNELS, SOURCES, Rates, Record, benign

TICK = 0.05
_BURST = re.compile(r"^(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)s/(\d+(?:\.\d+)?)s$")


class LoadError(Exception):
    """Bad load settings or an unreachable collector; the message says which."""


@dataclass(frozen=True)
class Burst:
    """``factor`` times the rate for ``seconds`` at the start of every ``every`` seconds (``5x10s/60s``)."""

    factor: float
    seconds: float
    every: float

    @classmethod
    def parse(cls, text: str) -> Burst:
        match = _BURST.match(text.strip())
        if not match:
            raise LoadError(f"burst {text!r}: expected FACTORxSECONDSs/EVERYs, e.g. 5x10s/60s")
        burst = cls(float(match.group(1)), float(match.group(2)), float(match.group(3)))
        if burst.seconds >= burst.every or burst.factor < 1:
            raise LoadError(f"burst {text!r}: the burst must be shorter than its period and the factor >= 1")
        return burst

    def factor_at(self, elapsed: float) -> float:
        return self.factor if elapsed % self.every < self.seconds else 1.0


@dataclass(frozen=True)
class Targets:
    syslog_udp: tuple[str, int] | None = None
    syslog_tcp: tuple[str, int] | None = None
    mqtt: tuple[str, int] | None = None
    http_url: str | None = None
    #: parser name -> bearer token of an HTTP ingest source with that parser
    http_tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.http_url is not None and not self.http_url.startswith(("http://", "https://")):
            raise LoadError(f"HTTP ingest URL {self.http_url!r} must start with http:// or https://")

    def channels(self) -> list[str]:
        out = []
        if self.syslog_udp or self.syslog_tcp:
            out.append("syslog")
        if self.mqtt:
            out.append("mqtt")
        if self.http_url:
            out.extend(c for c, parser in CHANNELS.items() if parser in self.http_tokens and c in SOURCES)
        return out


@dataclass(frozen=True)
class LoadResult:
    seconds: float
    sent: dict[str, int]
    errors: int
    target_eps: float

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    @property
    def achieved_eps(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3), "sent": self.total, "by_transport": dict(sorted(self.sent.items())),
            "errors": self.errors, "target_eps": self.target_eps, "achieved_eps": round(self.achieved_eps, 1),
        }  # fmt: skip


def stream(city: City, seed: int, channels: list[str], eps: float, start: datetime) -> Iterator[Record]:
    """Endless benign records of ``channels``, with simulated time running at about the wall-clock rate."""
    base = Rates()
    per_hour = sum(getattr(base, c) for c in channels)
    if per_hour <= 0:
        raise LoadError("no channel to generate: give at least one target")
    rates = Rates(**{c: (getattr(base, c) * eps * 3600 / per_hour if c in channels else 0) for c in SOURCES})
    window = timedelta(seconds=5)
    k = 0
    while True:
        yield from benign(city, seed + k, start + k * window, window.total_seconds() / 3600, rates, channels)
        k += 1


class _Senders:
    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.sent: dict[str, int] = {}
        self.errors = 0
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if targets.syslog_udp else None
        self._tcp = socket.create_connection(targets.syslog_tcp, timeout=10) if targets.syslog_tcp else None
        self._mqtt: Any = None
        if targets.mqtt:
            import paho.mqtt.client as mqtt

            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"citysoc-lab-load-{time.time_ns()}")
            client.connect(*targets.mqtt)
            client.loop_start()
            self._mqtt = client
        self._last_publish: Any = None
        self._http: dict[str, list[str]] = {}
        self._flip = False

    def send(self, record: Record) -> None:
        if record.channel == "syslog":
            data = record.line.encode()
            self._flip = not self._flip
            if self._udp is not None and (self._tcp is None or self._flip):
                assert self.targets.syslog_udp is not None
                self._udp.sendto(data, self.targets.syslog_udp)
                self._count("syslog-udp")
            elif self._tcp is not None:
                self._tcp.sendall(f"{len(data)} ".encode() + data)  # RFC 6587 octet counting
                self._count("syslog-tcp")
        elif record.channel == "mqtt":
            doc = json.loads(record.line)
            payload = json.dumps({"ts": doc["ts"], **doc["payload"]}, sort_keys=True)
            self._last_publish = self._mqtt.publish(doc["topic"], payload, qos=0)
            self._count("mqtt")
        else:
            self._http.setdefault(CHANNELS[record.channel], []).append(record.line)

    def _count(self, transport: str, n: int = 1) -> None:
        self.sent[transport] = self.sent.get(transport, 0) + n

    def flush(self) -> None:
        for parser, lines in self._http.items():
            if not lines:
                continue
            body = ("\n".join(lines) + "\n").encode()
            assert self.targets.http_url is not None
            request = urllib.request.Request(self.targets.http_url, data=body, method="POST", headers={  # noqa: S310
                "Authorization": f"Bearer {self.targets.http_tokens[parser]}",
                "Content-Type": "application/x-ndjson"})  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - scheme checked in Targets
                    reply = json.loads(response.read())
                self._count(f"http:{parser}", int(reply.get("accepted", 0)))
                self.errors += len(reply.get("rejected", []))
            except (urllib.error.URLError, OSError, ValueError):
                self.errors += len(lines)
            lines.clear()

    def close(self) -> None:
        self.flush()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        if self._mqtt is not None:
            if self._last_publish is not None:  # messages go out in order: the last one out means all are
                self._last_publish.wait_for_publish(10)
            self._mqtt.disconnect()
            self._mqtt.loop_stop()


def run_load(
    targets: Targets,
    eps: float,
    seconds: float,
    burst: Burst | None = None,
    seed: int = 7,
    city: City | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LoadResult:
    """Send ``eps`` records per second (times the burst factor during bursts) for ``seconds``."""
    if eps <= 0 or seconds <= 0:
        raise LoadError("eps and the duration must be positive")
    channels = targets.channels()
    if not channels:
        raise LoadError("no target: give a syslog, MQTT or HTTP ingest target (with a token for a parser)")
    records = stream(city or load_city(), seed, channels, eps, datetime.now(UTC))
    try:
        senders = _Senders(targets)
    except OSError as exc:
        raise LoadError(f"cannot reach a collector: {exc}") from exc
    begin = clock()
    due, sent, last = 0.0, 0, 0.0
    try:
        while True:
            elapsed = clock() - begin
            if elapsed >= seconds:
                break
            # the schedule: what should have been sent by now, whatever the time the last round took
            due += eps * (burst.factor_at(last) if burst else 1.0) * (elapsed - last)
            last = elapsed
            while sent < int(due):
                senders.send(next(records))
                sent += 1
            senders.flush()
            sleep(max(0.0, begin + (elapsed // TICK + 1) * TICK - clock()))
    finally:
        senders.close()
    return LoadResult(clock() - begin, dict(senders.sent), senders.errors, eps)
