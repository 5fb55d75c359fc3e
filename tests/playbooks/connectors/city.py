"""A test city for actions: every connector configured against real receivers on 127.0.0.1.

HTTP connectors (ticketing, firewall, identity, webhook, ioc, police-cyber)
share one recording HTTP server, at different paths; ``mail`` is an aiosmtpd
sink; ``iot-platform`` and ``ot-gateway`` publish on a Mosquitto broker that a
recorder subscribes to.  With ``with_secrets`` every connector authenticates
with a secret from the encrypted store (the sink and the broker check them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from playbooks.actions import ActionContext
from playbooks.connectors.secrets import SecretStore
from store.models import Incident, IncidentStatus, Severity
from store.sqlite import SQLiteStore
from tests.helpers import T0
from tests.playbooks.connectors.receivers import (
    HttpReceiver,
    MqttRecorder,
    SmtpSink,
    http_receiver,
    mosquitto,
    mqtt_recorder,
    smtp_sink,
)

#: secret name -> value; the values are what the tests look for in logs, runs and the audit log
SECRETS = {
    "tickets-token": "tkt-7Hq2-secret-bearer",
    "firewall-key": "fw-Api-Key-93kd",
    "identity-password": "idm-Passw0rd-x1",
    "ioc-token": "ioc-Bearer-55ab",
    "smtp-password": "smtp-Pw-Secret-42",
    "mqtt-password": "mqtt-Pw-Secret-17",
}
PATHS = {
    "ticketing": "/tickets",
    "firewall": "/firewall/rules",
    "identity": "/identity/disable",
    "hook": "/hook",
    "ioc": "/ioc/escalations",
    "police-cyber": "/police/escalations",
    "ioc-platform": "/ioc/platform-hook",
    "isp-noc": "/isp/noc",
    "data-protection": "/a05/personal-data-breaches",
    "health-emergency": "/health/emergency",
}
AUTH = {
    "ticketing": "{scheme: bearer, secret: tickets-token}",
    "firewall": "{scheme: header, header: X-Api-Key, secret: firewall-key}",
    "identity": "{scheme: basic, username: soar, secret: identity-password}",
    "ioc": "{scheme: bearer, secret: ioc-token}",
    "police-cyber": "{scheme: bearer, secret: ioc-token}",
}


@dataclass
class Receivers:
    """The receiving servers, shared by the tests of a module (:meth:`reset` between tests)."""

    http: HttpReceiver
    smtp: SmtpSink
    mqtt: MqttRecorder
    mqtt_port: int
    with_secrets: bool

    def reset(self) -> None:
        self.http.requests.clear()
        self.http.answers.clear()
        self.http.answers[PATHS["ticketing"]] = (201, {"data": {"key": "CITY-101"}})
        self.http.responder = None
        self.smtp.messages.clear()
        self.smtp.logins.clear()
        self.mqtt.messages.clear()


@contextmanager
def receivers(tmp: Path, with_secrets: bool = False) -> Iterator[Receivers]:
    with ExitStack() as stack:
        http = stack.enter_context(http_receiver())
        smtp = stack.enter_context(smtp_sink({"citysoc": SECRETS["smtp-password"]} if with_secrets else None))
        passwords = {"soar": SECRETS["mqtt-password"], "recorder": "recorder-pw"} if with_secrets else None
        port = stack.enter_context(mosquitto(tmp, passwords))
        recorder = stack.enter_context(mqtt_recorder(port, *(("recorder", "recorder-pw") if with_secrets else ())))
        rx = Receivers(http, smtp, recorder, port, with_secrets)
        rx.reset()
        yield rx


@dataclass
class City:
    home: Path
    store: SQLiteStore
    rx: Receivers

    @property
    def http(self) -> HttpReceiver:
        return self.rx.http

    @property
    def smtp(self) -> SmtpSink:
        return self.rx.smtp

    @property
    def mqtt(self) -> MqttRecorder:
        return self.rx.mqtt

    def ctx(self, incident_id: str | None = "INC-1", drill: bool = False, step: str = "step-1") -> ActionContext:
        return ActionContext(self.store, "RUN-TEST", incident_id, self.home, drill=drill, step=step)

    def incident(self, incident_id: str = "INC-1", title: str = "Camera brute force",
                 entities: Mapping[str, tuple[str, ...]] | None = None, severity: Severity = Severity.HIGH) -> str:
        self.store.create_incident(
            Incident(incident_id, title, severity, IncidentStatus.NEW, T0, T0, T0, T0, f"key-{incident_id}",
                     entities=dict(entities or {"source.ip": ("10.20.5.66",)}), tags=("attack.t1110",)),
            actor="test",
        )
        return incident_id

    def received(self) -> int:
        """How many requests, mails and MQTT messages arrived in all."""
        return len(self.http.requests) + len(self.smtp.messages) + len(self.mqtt.messages)


def _connectors(http: HttpReceiver, smtp_port: int, mqtt_port: int, with_secrets: bool) -> str:
    lines = ["connectors:"]
    for name, path in PATHS.items():
        lines += [f"  {name}:", "    type: http", f"    url: {http.url}{path}", "    timeout: 5"]
        if with_secrets and name in AUTH:
            lines.append(f"    auth: {AUTH[name]}")
        if name == "ticketing":
            lines += ["    field_map: {title: summary, description: body}", "    id_field: data.key"]
    lines += ["  mail:", "    type: smtp", "    host: 127.0.0.1", f"    port: {smtp_port}", "    security: none",
              "    sender: soc@city.example", "    timeout: 5",
              "    groups:", "      soc-duty: [duty@city.example]",
              "      ot-oncall: [ot1@water.city.example, ot2@water.city.example]",
              "      dpo: [dpo@data.city.example]", "      hospital-it: [it@hospital.city.example]",
              "      collector-oncall: [collectors@soc.city.example]"]
    if with_secrets:
        lines += ["    username: citysoc", "    password_secret: smtp-password"]
    for name, prefix in (("iot-platform", "city/iot"), ("ot-gateway", "city/ot")):
        lines += [f"  {name}:", "    type: mqtt", "    host: 127.0.0.1", f"    port: {mqtt_port}", "    tls: false",
                  f"    topic_prefix: {prefix}", f"    client_id: soar-{name}", "    timeout: 5"]
        if with_secrets:
            lines += ["    username: soar", "    password_secret: mqtt-password"]
    return "\n".join(lines) + "\n"


@contextmanager
def city(tmp: Path, rx: Receivers) -> Iterator[City]:
    """A fresh home (connectors.yml, secrets when the receivers check them) and store on shared receivers."""
    rx.reset()
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    if rx.with_secrets:
        store = SecretStore(home)
        for name, value in SECRETS.items():
            store.set(name, value)
    (home / "connectors.yml").write_text(_connectors(rx.http, rx.smtp.port, rx.mqtt_port, rx.with_secrets))
    db = SQLiteStore(home / "citysoc.db")
    try:
        yield City(home, db, rx)
    finally:
        db.close()
