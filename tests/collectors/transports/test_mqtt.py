"""MQTT subscriber against a real Mosquitto broker started on a free port."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collectors.pipeline import IngestPipeline
from collectors.spool import Spool
from collectors.transports.mqtt import MqttSubscriber, message_record
from store.sqlite import SQLiteStore
from tests.helpers import REPO, T0
from tests.services import free_port, wait_port

SAMPLE = REPO / "tests" / "data" / "collectors" / "mqtt.jsonl"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def _sample_messages() -> list[tuple[str, bytes]]:
    out = []
    for line in SAMPLE.read_text().splitlines():
        doc = json.loads(line)
        if isinstance(doc.get("payload"), dict) and isinstance(doc.get("topic"), str):
            payload = {"ts": doc["ts"], **doc["payload"]}
            out.append((doc["topic"], json.dumps(payload).encode()))
    return out


def _drain_until(spool: Spool, pipeline: IngestPipeline, store: SQLiteStore, events: int, dead: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spool.drain(pipeline)
        if store.count_events() >= events and store.count_dead_letters() >= dead:
            return
        time.sleep(0.05)


def test_telemetry_is_spooled_acknowledged_and_stored(broker: int, tmp_path: Path, store: SQLiteStore,
                                                      pipeline: IngestPipeline) -> None:
    spool = Spool(tmp_path / "spool")
    subscriber = MqttSubscriber(spool, port=broker, client_id="citysoc-test")
    subscriber.start()
    messages = _sample_messages()
    bad = [("city/ba-dinh/air-quality/aq-009/telemetry", b"\xff\xfe"),
           ("city/ba-dinh/air-quality/aq-009/telemetry", b"[1, 2]")]
    try:
        _publish(broker, messages + bad)
        _drain_until(spool, pipeline, store, 3, 4)
    finally:
        subscriber.stop()
        spool.close()
    events = {e.get("iot.device.id"): e for e in store.iter_events()}
    # the sample's six messages: three good, one nested too deep and one NaN reading (dead-lettered by the parser),
    # one on a vendor topic the subscriber does not follow
    assert len(messages) == 6
    assert sorted(events) == ["aq-001", "sl-0107", "wm-3301"] and store.count_events() == 3
    aq = events["aq-001"]
    assert aq.get("iot.telemetry.pm25") == 41.5
    assert aq.get("labels.area") == "ba-dinh"
    assert aq.get("@timestamp") == "2026-11-20T08:00:00.250000Z"  # the device's clock, not the receive time
    assert aq.get("labels.source") == f"mqtt:127.0.0.1:{broker}"
    assert aq.get("observer.type") == "mqtt"
    reasons = sorted(d.reason for d in store.list_dead_letters())
    assert reasons == ["[iot.mqtt] BadRecord: invalid JSON: NaN is not allowed in a number field",
                       "[iot.mqtt] BadRecord: payload: sensor.pm is nested more than one level deep",
                       "[mqtt] payload is a JSON list, not an object", "[mqtt] payload is not UTF-8 (byte 0)"]
    # vendor/aq-003/up is outside the subscribed topic filter: never delivered, so 5 + 2 acknowledged
    assert subscriber.metrics.snapshot()[(subscriber.source, "acknowledged")] == 7


def test_messages_published_while_down_arrive_after_restart_once(broker: int, tmp_path: Path,
                                                                 store: SQLiteStore,
                                                                 pipeline: IngestPipeline) -> None:
    messages = _sample_messages()
    spool = Spool(tmp_path / "spool")
    first = MqttSubscriber(spool, port=broker, client_id="citysoc-durable")
    first.start()  # registers the persistent session
    first.stop()
    _publish(broker, messages)  # the collector is down: the broker keeps them for the session
    _publish(broker, messages[:1])  # a redelivery of the same message (same payload)
    second = MqttSubscriber(spool, port=broker, client_id="citysoc-durable")
    second.start()
    try:
        _drain_until(spool, pipeline, store, 3, 2)
        time.sleep(0.2)  # let a late duplicate arrive, if the broker were to send one
        spool.drain(pipeline)
    finally:
        second.stop()
        spool.close()
    assert store.count_events() == 3
    assert store.count_dead_letters() == 2


def test_message_record_offsets_are_content_based() -> None:
    one = message_record("mqtt:b:1", "city/a/meter/m-1/telemetry", b'{"kwh": 1.5}', T0)
    again = message_record("mqtt:b:1", "city/a/meter/m-1/telemetry", b'{"kwh": 1.5}', T0.replace(hour=9))
    assert one.offset == again.offset
    other = message_record("mqtt:b:1", "city/a/meter/m-1/telemetry", b'{"kwh": 1.6}', T0)
    assert other.offset != one.offset
