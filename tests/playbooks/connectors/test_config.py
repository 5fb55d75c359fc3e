"""connectors.yml: typed configs, every error with file and connector, insecure transports refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from playbooks.connectors.config import HttpConfig, MqttConfig, SmtpConfig, load_connectors, parse_connectors
from playbooks.connectors.errors import ConnectorError

GOOD = """
connectors:
  ticketing:
    type: http
    url: https://tickets.city.example/api/v2/issues
    auth: {scheme: bearer, secret: ticketing-token}
    field_map: {title: summary}
    id_field: data.key
  mail:
    type: smtp
    host: smtp.city.example
    sender: soc@city.example
    username: citysoc
    password_secret: smtp-password
  iot-platform:
    type: mqtt
    host: mqtt.city.example
    username: citysoc-soar
    password_secret: mqtt-password
"""


def test_a_good_file_gives_typed_configs(tmp_path: Path) -> None:
    (tmp_path / "connectors.yml").write_text(GOOD)
    connectors = load_connectors(tmp_path)
    assert connectors.names() == ["iot-platform", "mail", "ticketing"]
    ticketing = connectors.get("ticketing", HttpConfig)
    assert ticketing.auth is not None and ticketing.auth.secret == "ticketing-token"
    assert ticketing.field_map == {"title": "summary"} and ticketing.id_field == "data.key"
    mail = connectors.get("mail", SmtpConfig)
    assert (mail.port, mail.security) == (587, "starttls")
    mqtt = connectors.get("iot-platform", MqttConfig)
    assert (mqtt.port, mqtt.tls, mqtt.qos) == (8883, True, 1)
    with pytest.raises(ConnectorError, match="connector 'mail' is of type 'smtp', this action needs 'http'"):
        connectors.get("mail", HttpConfig)
    with pytest.raises(ConnectorError, match=r"no connector 'firewall' .*configured: iot-platform, mail, ticketing"):
        connectors.get("firewall", HttpConfig)


BAD = """
connectors:
  plain:
    type: http
    url: http://tickets.city.example/api
  creds:
    type: http
    url: https://user:pw@tickets.city.example/api
  smtp-open:
    type: smtp
    host: smtp.city.example
    sender: soc@city.example
    security: none
  mq:
    type: mqtt
    host: 10.0.0.5
    tls: false
  typo:
    type: http
    url: https://x.example
    tiemout: 3
  crlf:
    type: http
    url: https://x.example
    headers: {"X-A": "a\\r\\nX-Evil: 1"}
  kind:
    type: ftp
"""


def test_every_error_is_collected_with_its_connector() -> None:
    errors: list[str] = []
    connectors = parse_connectors(yaml.safe_load(BAD), "connectors.yml", errors)
    assert connectors.names() == []
    assert len(errors) == 7
    joined = "\n".join(errors)
    for expected in (
        "connector 'plain': plain http:// to tickets.city.example needs 'plaintext: true'",
        "connector 'creds': 'url' must not hold credentials",
        "connector 'smtp-open': unencrypted SMTP to smtp.city.example needs 'plaintext: true'",
        "connector 'mq': MQTT without TLS to 10.0.0.5 needs 'plaintext: true'",
        "connector 'typo': unknown key(s) tiemout",
        "connector 'crlf': 'headers' must map strings to single-line strings",
        "connector 'kind': 'type' must be one of http, smtp, mqtt",
    ):
        assert expected in joined
    with pytest.raises(ConnectorError, match="connector 'plain'"):
        parse_connectors(yaml.safe_load(BAD), "connectors.yml")


def test_loopback_may_be_plain_and_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_connectors(tmp_path).names() == []
    (tmp_path / "connectors.yml").write_text("connectors:\n  hook: {type: http, url: 'http://127.0.0.1:8080/x'}\n")
    assert load_connectors(tmp_path).get("hook", HttpConfig).url == "http://127.0.0.1:8080/x"
