"""Commands published on a real Mosquitto broker, with a password from the secret store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playbooks.connectors.config import MqttConfig
from playbooks.connectors.errors import ConnectorError
from playbooks.connectors.mqtt import command_topic, publish_json
from playbooks.connectors.secrets import KEY_ENV, SecretStore
from tests.playbooks.connectors.receivers import mosquitto, mqtt_recorder


def test_publish_with_a_password_and_refusal_of_a_wrong_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    secrets = SecretStore(tmp_path)
    secrets.set("mqtt-password", "mq-Secret-55")
    secrets.set("wrong", "not-the-password")
    with mosquitto(tmp_path, {"soar": "mq-Secret-55", "recorder": "rec-pw"}) as port, \
            mqtt_recorder(port, "recorder", "rec-pw") as recorder:
        config = MqttConfig("iot", "127.0.0.1", port=port, tls=False, username="soar", password_secret="mqtt-password",
                            topic_prefix="city/commands", timeout=5)
        out = publish_json(config, secrets, command_topic(config, "cam-0041"), {"command": "quarantine"})
        assert out["topic"] == "city/commands/cam-0041/command" and out["qos"] == 1
        [(topic, payload)] = recorder.wait_for(1)
        bad = MqttConfig("iot", "127.0.0.1", port=port, tls=False, username="soar", password_secret="wrong", timeout=5)
        with pytest.raises(ConnectorError, match="connection refused"):
            publish_json(bad, secrets, command_topic(bad, "cam-0041"), {"command": "quarantine"})
    assert topic == "city/commands/cam-0041/command"
    assert json.loads(payload) == {"command": "quarantine"}


@pytest.mark.parametrize("target", ["cam/#", "+", "a/b", "", "x" * 129, "cam 1", "cam\x00"])
def test_targets_cannot_add_topic_levels_or_wildcards(target: str) -> None:
    with pytest.raises(ConnectorError, match="is not a device or asset id"):
        command_topic(MqttConfig("iot", "127.0.0.1", tls=False), target)
