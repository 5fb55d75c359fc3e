"""Publishing commands to the IoT/OT platform through an MQTT connector (paho-mqtt), QoS 1 by default.

A command is one JSON object published to ``<topic_prefix>/<target>/command``;
the target id is checked to be a plain identifier, so no event content can
add topic levels or wildcards.  The publish waits for the broker's
acknowledgement (PUBACK) within the connector's timeout.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt

from playbooks.connectors.config import MqttConfig
from playbooks.connectors.errors import ConnectorError, TransientConnectorError
from playbooks.connectors.http import tls_context
from playbooks.connectors.secrets import SecretStore

TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def command_topic(config: MqttConfig, target: str) -> str:
    if not TARGET.match(target):
        raise ConnectorError(
            f"{target!r} is not a device or asset id (letters, digits, '.', '_', ':', '-'; at most 128)"
        )
    return f"{config.topic_prefix}/{target}/command"


def publish_json(config: MqttConfig, secrets: SecretStore, topic: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Publish ``payload`` and wait for the broker to acknowledge it."""
    where = f"{config.name}: mqtt {config.host}:{config.port}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=True)
    if config.username:
        client.username_pw_set(config.username, secrets.get(config.password_secret) if config.password_secret else None)
    if config.tls:
        client.tls_set_context(tls_context(config.ca_file))
    connected = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        outcome["connect"] = reason
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(config.host, config.port, keepalive=30)
    except ssl.SSLError as exc:
        raise ConnectorError(f"{where}: TLS verification failed: {exc}") from exc
    except OSError as exc:
        raise TransientConnectorError(f"{where}: {exc}") from exc
    client.loop_start()
    try:
        if not connected.wait(config.timeout):
            raise TransientConnectorError(f"{where}: no CONNACK within {config.timeout:g} s")
        reason = outcome["connect"]
        if reason.is_failure:
            raise ConnectorError(f"{where}: connection refused: {reason}")
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        info = client.publish(topic, body, qos=config.qos)
        try:
            info.wait_for_publish(config.timeout)
        except (RuntimeError, ValueError) as exc:
            raise TransientConnectorError(f"{where}: publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise TransientConnectorError(f"{where}: no PUBACK for {topic} within {config.timeout:g} s")
        return {"topic": topic, "mid": info.mid, "qos": config.qos}
    finally:
        client.disconnect()
        client.loop_stop()
