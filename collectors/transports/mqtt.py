"""MQTT subscriber: device telemetry from a broker (Mosquitto), QoS 1, acknowledged only once spooled.

The subscriber keeps a persistent session (``clean_session=False``, a fixed
client id) and acknowledges each message manually *after* it is in the
write-ahead :class:`collectors.spool.Spool`.  If the collector dies before
that, the broker delivers the message again on reconnect; messages published
while it is down wait in the broker's session queue.

Each message becomes one ``iot.mqtt`` line (``ts``, ``topic``, ``payload``); the
parser maps the topic ``city/<area>/<device_type>/<device_id>/telemetry`` to the
device fields.  ``ts`` is the device's own ``ts`` key when the payload has one
(and is then taken out of the readings), otherwise the receive time.  The
offset is ``<topic>:<sha256 of the payload, 16 hex>``, so a redelivered message
gets the same stable id and the store keeps one copy (two identical payloads
without a device ``ts`` on one topic are one event).  A payload that is not a
UTF-8 JSON object is dead-lettered with the topic as its offset.

Back-pressure: when the spool is full, the message callback waits and retries;
the broker queues for us meanwhile, nothing is dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from collectors.base import NESTED_TOO_DEEP, CollectorError, RawRecord
from collectors.metrics import Metrics
from collectors.spool import Rejected, Spool, SpoolFull
from store.event import format_ts

log = logging.getLogger(__name__)

PARSER = "iot.mqtt"
DEFAULT_TOPICS = ("city/+/+/+/telemetry",)


def message_record(source: str, topic: str, payload: bytes, received: datetime) -> RawRecord | Rejected:
    """The spool entry of one message: an ``iot.mqtt`` line, or a dead letter saying why not."""
    digest = hashlib.sha256(payload).hexdigest()[:16]
    offset = f"{topic}:{digest}"
    try:
        body = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Rejected(source, offset, f"[mqtt] payload is not UTF-8 (byte {exc.start})",
                        payload.decode("utf-8", "replace"))
    except ValueError as exc:
        return Rejected(source, offset, f"[mqtt] payload is not JSON: {exc}", payload.decode("utf-8"))
    except RecursionError:
        return Rejected(source, offset, f"[mqtt] {NESTED_TOO_DEEP}", payload.decode("utf-8"))
    if not isinstance(body, dict):
        return Rejected(source, offset, f"[mqtt] payload is a JSON {type(body).__name__}, not an object",
                        payload.decode("utf-8"))
    device_ts = body.pop("ts", None)
    ts = device_ts if isinstance(device_ts, (str, int, float)) and not isinstance(device_ts, bool) else None
    line = {"ts": ts if ts is not None else format_ts(received), "topic": topic, "payload": body}
    return RawRecord(json.dumps(line, ensure_ascii=False, sort_keys=True), source, offset, received=received)


class MqttSubscriber:
    """Subscribes to ``topics`` on ``host:port`` and spools every message before acknowledging it."""

    def __init__(
        self,
        spool: Spool,
        host: str = "127.0.0.1",
        port: int = 1883,
        topics: Sequence[str] = DEFAULT_TOPICS,
        client_id: str = "citysoc-collector",
        metrics: Metrics | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        if not topics:
            raise CollectorError("mqtt subscriber: give at least one topic filter")
        self.spool = spool
        self.host, self.port = host, port
        self.topics = list(topics)
        self.metrics = metrics or Metrics()
        self.source = f"mqtt:{host}:{port}"
        self.subscribed = threading.Event()
        self._stopping = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                   manual_ack=True)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls_ca is not None:
            self._client.tls_set(ca_certs=tls_ca)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe and wait until the broker confirmed the subscription."""
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise CollectorError(f"mqtt subscriber: cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        if not self.subscribed.wait(timeout):
            self.stop()
            raise CollectorError(f"mqtt subscriber: no subscription confirmed by {self.host}:{self.port} "
                                 f"within {timeout} s")

    def stop(self) -> None:
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("mqtt subscriber: %s refused the connection: %s", self.source, reason)
            return
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("mqtt subscriber: %s refused a subscription: %s", self.source, reasons)
            return
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        item = message_record(self.source, message.topic, bytes(message.payload), datetime.now(UTC))
        self.metrics.inc(self.source, "received")
        delay = 0.05
        while True:
            try:
                self.spool.append([item], PARSER)
                break
            except SpoolFull:
                if self._stopping.wait(delay):
                    return  # not acknowledged: the broker delivers it again next session
                delay = min(delay * 2, 2.0)
        self.metrics.inc(self.source, "rejected" if isinstance(item, Rejected) else "spooled")
        client.ack(message.mid, message.qos)
        self.metrics.inc(self.source, "acknowledged")
