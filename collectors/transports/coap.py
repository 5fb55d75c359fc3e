"""CoAP report endpoint: constrained devices (and LwM2M Send) POST their readings, spooled before the answer.

``POST coap://<host>/telemetry/<area>/<device_type>/<device_id>`` with either

* a JSON object of readings (content format 50, ``application/json``), or
* a SenML JSON pack (content format 110, ``application/senml+json``), as LwM2M
  1.1 devices send: names are the base name plus the name (``/3303/0/5700``
  becomes the reading ``3303_0_5700``), values ``v``/``vs``/``vb``, and the record
  time ``bt + t`` (epoch seconds) the device time of the report.

The report becomes one ``iot.mqtt`` line on the topic
``city/<area>/<device_type>/<device_id>/telemetry`` -- the same mapping as
MQTT telemetry -- and is written to the spool (fsync) before the 2.04 Changed
response, which is the acknowledgement of a confirmable request: a device
retransmits until it has it.  A report that cannot be read is answered 4.00 Bad
Request with the reason and dead-lettered; a full spool answers 5.03 Service
Unavailable with Max-Age (back-pressure; the device retries later).  Other
paths get 4.04 Not Found.  The
offset hashes the path and payload, so a retransmission is stored once.

The server runs aiocoap on its own asyncio loop in a thread; it binds UDP on
``host:port`` (127.0.0.1:5683 by default).  DTLS/OSCORE are not
configured here: put the endpoint behind the city's IoT gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiocoap
import aiocoap.resource as resource

from collectors.base import NESTED_TOO_DEEP, CollectorError, RawRecord
from collectors.metrics import Metrics
from collectors.spool import Rejected, Spool, SpoolFull
from store.event import format_ts

log = logging.getLogger(__name__)

PARSER = "iot.mqtt"
JSON, SENML_JSON = 50, 110


class ReportError(CollectorError):
    """A report that cannot be read; the message is sent back to the device."""


def _senml(pack: Any) -> tuple[dict[str, Any], float | None]:
    """Readings and device time of a SenML JSON pack (RFC 8428, resolved names)."""
    if not isinstance(pack, list) or not pack:
        raise ReportError("SenML pack must be a non-empty JSON array")
    readings: dict[str, Any] = {}
    base_name, base_time, when = "", 0.0, None
    for index, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise ReportError(f"SenML record {index} is not an object")
        base_name = str(rec.get("bn", base_name))
        bt = rec.get("bt", base_time)
        t = rec.get("t", 0)
        if not isinstance(bt, (int, float)) or not isinstance(t, (int, float)) or isinstance(bt, bool):
            raise ReportError(f"SenML record {index}: bt and t must be numbers")
        base_time = float(bt)
        name = (base_name + str(rec.get("n", ""))).strip("/").replace("/", "_")
        values = [rec[k] for k in ("v", "vs", "vb") if k in rec]
        if not name or len(values) != 1:
            raise ReportError(f"SenML record {index}: needs a name and exactly one of v, vs, vb")
        readings[name] = values[0]
        if base_time + t > 0:
            when = base_time + float(t)
    return readings, when


def report_record(source: str, path: Sequence[str], payload: bytes, content_format: int | None,
                  received: datetime) -> RawRecord:
    """The spool record of one report; raises ReportError saying what is wrong with it."""
    if len(path) != 4 or path[0] != "telemetry" or not all(path):
        raise ReportError("post to /telemetry/<area>/<device_type>/<device_id>")
    try:
        body = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReportError(f"payload is not UTF-8 (byte {exc.start})") from exc
    except ValueError as exc:
        raise ReportError(f"payload is not JSON: {exc}") from exc
    except RecursionError:
        raise ReportError(NESTED_TOO_DEEP) from None
    when: Any = None
    if content_format == SENML_JSON:
        readings, epoch = _senml(body)
        when = epoch
    elif content_format in (JSON, None):
        if not isinstance(body, dict):
            raise ReportError("payload must be a JSON object of readings (or SenML with content format 110)")
        readings = dict(body)
        when = readings.pop("ts", None)
    else:
        raise ReportError(f"content format {content_format} is not supported (use 50 JSON or 110 SenML JSON)")
    topic = f"city/{path[1]}/{path[2]}/{path[3]}/telemetry"
    line = {"ts": when if when is not None else format_ts(received), "topic": topic, "payload": readings}
    offset = f"{'/'.join(path)}:{hashlib.sha256(payload).hexdigest()[:16]}"
    return RawRecord(json.dumps(line, ensure_ascii=False, sort_keys=True), source, offset, received=received)


class _Report(resource.Resource, resource.PathCapable):
    def __init__(self, server: CoapServer) -> None:
        super().__init__()
        self.server = server

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if request.code != aiocoap.POST:
            return aiocoap.Message(code=aiocoap.METHOD_NOT_ALLOWED, payload=b"use POST")
        # the site hands a path-capable resource the path below its own
        return self.server.accept(["telemetry", *request.opt.uri_path], bytes(request.payload),
                                  None if request.opt.content_format is None else int(request.opt.content_format),
                                  request.remote.hostinfo)


class CoapServer:
    """The CoAP endpoint in its own thread, on UDP ``host:port``."""

    def __init__(self, spool: Spool, host: str = "127.0.0.1", port: int = 5683, metrics: Metrics | None = None) -> None:
        if not 0 < port < 65536:
            raise CollectorError(f"coap server: port {port} must be 1-65535")
        self.spool = spool
        self.host, self.port = host, port
        self.metrics = metrics or Metrics()
        self.source = f"coap:{host}:{port}"
        self.address: tuple[str, int] | None = None
        self._loop = asyncio.new_event_loop()
        self._context: aiocoap.Context | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="coap", daemon=True)

    def accept(self, path: list[str], payload: bytes, content_format: int | None, peer: str) -> aiocoap.Message:
        now = datetime.now(UTC)
        self.metrics.inc(self.source, "received")
        try:
            item: RawRecord | Rejected = report_record(self.source, path, payload, content_format, now)
            reason = None
        except ReportError as exc:
            reason = str(exc)
            offset = f"{'/'.join(path)}:{hashlib.sha256(payload).hexdigest()[:16]}"
            item = Rejected(self.source, offset, f"[coap] {peer}: {reason}", payload.decode("utf-8", "replace"))
        try:
            self.spool.append([item], PARSER)
        except SpoolFull:
            response = aiocoap.Message(code=aiocoap.SERVICE_UNAVAILABLE, payload=b"collector busy; retry later")
            response.opt.max_age = 5
            return response
        if reason is not None:
            self.metrics.inc(self.source, "rejected")
            return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=reason.encode("utf-8")[:512])
        self.metrics.inc(self.source, "spooled")
        return aiocoap.Message(code=aiocoap.CHANGED)

    def start(self) -> None:
        site = resource.Site()
        site.add_resource(["telemetry"], _Report(self))
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            aiocoap.Context.create_server_context(site, bind=(self.host, self.port), transports=["udp6"]),
            self._loop)
        try:
            self._context = future.result(10)
        except Exception as exc:  # bind errors and the like surface here, from the loop thread
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            raise CollectorError(f"coap server cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.address = (self.host, self.port)

    def stop(self) -> None:
        if self._context is not None:
            asyncio.run_coroutine_threadsafe(self._context.shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
