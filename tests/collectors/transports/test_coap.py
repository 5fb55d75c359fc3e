"""CoAP report endpoint with a real aiocoap client: JSON and SenML (LwM2M) reports, errors, retransmissions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiocoap
import pytest

from collectors.pipeline import IngestPipeline
from collectors.spool import Spool
from collectors.transports.coap import SENML_JSON, CoapServer
from store.sqlite import SQLiteStore
from tests.services import free_port

# an LwM2M 1.1 Send of a temperature sensor (object 3303) and its battery level (object 3, resource 9)
SENML = [{"bn": "/3303/0/", "bt": 1795161600, "n": "5700", "v": 27.5},
         {"n": "5701", "vs": "Cel"}, {"bn": "/3/0/", "n": "9", "v": 87}]


@pytest.fixture
def coap(tmp_path: Path) -> Iterator[tuple[CoapServer, Spool]]:
    spool = Spool(tmp_path / "spool")
    server = CoapServer(spool, port=free_port())
    server.start()
    yield server, spool
    server.stop()
    spool.close()


async def _post_all(port: int, posts: list[tuple[str, bytes, int | None]]) -> list[tuple[str, bytes]]:
    context = await aiocoap.Context.create_client_context()
    try:
        out = []
        for path, payload, fmt in posts:
            request = aiocoap.Message(code=aiocoap.POST, uri=f"coap://127.0.0.1:{port}{path}", payload=payload)
            if fmt is not None:
                request.opt.content_format = fmt
            response = await context.request(request).response
            out.append((str(response.code), bytes(response.payload)))
        return out
    finally:
        await context.shutdown()


def test_reports_are_stored_and_bad_ones_answered(coap: tuple[CoapServer, Spool], store: SQLiteStore,
                                                  pipeline: IngestPipeline) -> None:
    server, spool = coap
    port = server.port
    json_report = json.dumps({"ts": "2026-11-21T08:00:00Z", "pm25": 41.5, "no2": 22.0}).encode()
    answers = asyncio.run(_post_all(port, [
        ("/telemetry/ba-dinh/air-quality/aq-001", json_report, 50),
        ("/telemetry/ba-dinh/air-quality/aq-001", json_report, 50),  # a retransmission
        ("/telemetry/tay-ho/thermometer/th-17", json.dumps(SENML).encode(), SENML_JSON),
        ("/telemetry/tay-ho/thermometer/th-17", b"[{\"n\": \"5700\"}]", SENML_JSON),
        ("/status/x", json_report, 50),
        ("/telemetry/ba-dinh/air-quality/aq-002", b"{not json", 50),
    ]))
    codes = [code for code, _ in answers]
    assert codes == ["2.04 Changed", "2.04 Changed", "2.04 Changed", "4.00 Bad Request", "4.04 Not Found",
                     "4.00 Bad Request"]
    assert answers[3][1] == b"SenML record 0: needs a name and exactly one of v, vs, vb"
    spool.drain(pipeline)
    events = {e.get("iot.device.id"): e for e in store.iter_events()}
    assert store.count_events() == 2 and sorted(events) == ["aq-001", "th-17"]
    aq, th = events["aq-001"], events["th-17"]
    assert aq.get("iot.telemetry.pm25") == 41.5 and aq.get("@timestamp") == "2026-11-21T08:00:00.000000Z"
    assert aq.get("labels.area") == "ba-dinh" and aq.get("labels.source") == f"coap:127.0.0.1:{port}"
    assert th.get("iot.telemetry.3303_0_5700") == 27.5 and th.get("iot.telemetry.3303_0_5701") == "Cel"
    assert th.get("iot.telemetry.3_0_9") == 87
    assert th.get("@timestamp") == "2026-11-20T08:00:00.000000Z"  # bt of the SenML pack, epoch seconds
    dead = sorted(d.reason for d in store.list_dead_letters())
    assert len(dead) == 2 and all(d.startswith("[coap] 127.0.0.1:") for d in dead)
    assert dead[0].endswith(": SenML record 0: needs a name and exactly one of v, vs, vb")
    assert dead[1].endswith(": payload is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
                            "(char 1)")
    assert server.metrics.snapshot()[(server.source, "rejected")] == 2
