"""Every action against real receivers: what arrived, idempotency, dry-runs without side effects."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enrichment.assets import Asset, AssetRegister
from enrichment.intel.feeds import import_bundle
from playbooks.actions import REGISTRY, ActionError, Impact, TransientActionError
from playbooks.actions.escalate import escalation_schema
from store.intel import IntelStore
from store.models import Severity
from tests.helpers import REPO, event
from tests.playbooks.connectors.city import PATHS, City, Receivers, city, receivers

#: a valid call of every registered action (the drill and injection tests use these too)
VALID: dict[str, dict[str, Any]] = {
    "add_comment": {"text": "Checked by the duty officer"},
    "block_domain": {"domain": "c2.evil.example", "reason": "C2"},
    "block_ip": {"ip": "10.20.5.66", "reason": "brute force"},
    "collect_evidence": {"limit": 50},
    "create_ticket": {"title": "Camera brute force", "description": "see incident"},
    "disable_account": {"account": "cam-admin", "reason": "credential stuffing"},
    "enrich": {},
    "escalate": {"to": "ioc", "situation": "special", "summary": "Cameras under attack",
                 "requested_actions": "isolate cameras; reset passwords", "responsible": "Department of Transport"},
    "firewall_block": {"value": "10.20.5.66", "reason": "brute force"},
    "isolate_device": {"device_id": "cam-0041", "reason": "compromised"},
    "notify_email": {"to": "duty@city.example", "subject": "Camera brute force", "body": "Please look"},
    "notify_webhook": {"connector": "hook", "message": "Camera brute force"},
    "ot_safe_state": {"asset_id": "water-plc-ps3", "mode": "manual", "reason": "unknown Modbus writer"},
    "release_device": {"device_id": "cam-0041", "reason": "cleaned"},
    "set_status": {"status": "contained", "reason": "blocked"},
    "update_ticket": {"ticket_id": "CITY-101", "status": "resolved", "comment": "contained"},
}


@pytest.fixture(scope="module")
def rx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receivers]:
    with receivers(tmp_path_factory.mktemp("receivers")) as shared:
        yield shared


@pytest.fixture
def town(rx: Receivers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[City]:
    monkeypatch.delenv("CITYSOC_SECRETS_KEY", raising=False)
    monkeypatch.delenv("CITYSOC_CONNECTORS", raising=False)
    monkeypatch.delenv("CITYSOC_ASSETS", raising=False)
    with city(tmp_path, rx) as c:
        c.incident()
        yield c


def call(town: City, name: str, args: dict[str, Any], **ctx: Any) -> Any:
    spec = REGISTRY.get(name)
    return spec.func(town.ctx(**ctx), **spec.coerce(args))


def test_every_action_declares_impact_idempotency_and_a_documented_schema() -> None:
    assert sorted(VALID) == REGISTRY.names(), "add a valid call of the new action to VALID"
    docs = (REPO / "docs" / "actions.md").read_text()
    for spec in REGISTRY:
        assert isinstance(spec.impact, Impact) and isinstance(spec.idempotent, bool)
        assert spec.description, f"{spec.name} has no docstring"
        row = f"| `{spec.name}` | {spec.impact.value} | {'yes' if spec.idempotent else 'no'} |"
        assert row in docs, f"docs/actions.md has no reference row {row!r}"
        schema = spec.schema()
        assert set(schema["arguments"]) == set(spec.parameters)
    guarded = {s.name for s in REGISTRY if s.impact.needs_approval}
    assert guarded == {"isolate_device", "ot_safe_state"}


def test_webhook_sends_json_with_a_stable_idempotency_key(town: City) -> None:
    call(town, "notify_webhook", {"connector": "hook", "message": "hello"})
    call(town, "notify_webhook", {"connector": "hook", "message": "hello"})  # a retry of the same step
    call(town, "notify_webhook", {"connector": "hook", "message": "hello"}, step="step-2")
    call(town, "notify_webhook", {"url": town.http.url + "/direct", "message": "hi"})
    first, retry, other, direct = town.http.requests
    assert first.path == "/hook" and direct.path == "/direct"
    assert first.header("Idempotency-Key") == retry.header("Idempotency-Key") != other.header("Idempotency-Key")
    body = first.json()
    assert body["schema"] == "citysoc.notification/1" and body["message"] == "hello"
    assert (body["incident_id"], body["run_id"]) == ("INC-1", "RUN-TEST")
    with pytest.raises(ActionError, match="exactly one of"):
        call(town, "notify_webhook", {"message": "x"})
    with pytest.raises(ActionError, match="only http"):
        call(town, "notify_webhook", {"url": "file:///etc/passwd", "message": "x"})
    with pytest.raises(ActionError, match=r"plain http:// to hooks\.city\.example"):
        call(town, "notify_webhook", {"url": "http://hooks.city.example/x", "message": "x"})


def test_email_reaches_the_sink(town: City) -> None:
    out = call(town, "notify_email", {"to": "duty@city.example, ops@city.example", "subject": "Brute force",
                                      "body": "Cameras at Hoan Kiem"})
    [(sender, rcpts, raw)] = town.smtp.messages
    assert sender == "soc@city.example" and rcpts == ["duty@city.example", "ops@city.example"]
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Brute force" and parsed["Message-ID"] == out["message_id"]
    text = parsed.get_content()
    assert "Cameras at Hoan Kiem" in text and "CitySOC incident INC-1 (high), run RUN-TEST" in text


def test_email_to_recipient_groups_of_the_connector(town: City) -> None:
    out = call(town, "notify_email", {"to": "ot-oncall, soc-duty, ot1@water.city.example", "subject": "s", "body": "b"})
    assert out["to"] == ["ot1@water.city.example", "ot2@water.city.example", "duty@city.example"]
    assert town.smtp.messages[0][1] == out["to"]
    with pytest.raises(ActionError, match="neither an address nor a recipient group"):
        call(town, "notify_email", {"to": "nobody", "subject": "s", "body": "b"})


def test_ticket_is_created_once_and_updated(town: City) -> None:
    assert call(town, "create_ticket", {"title": "Brute force", "description": "d"}) == {"ticket_id": "CITY-101"}
    again = call(town, "create_ticket", {"title": "Brute force", "description": "d"})  # redelivered step
    assert again == {"ticket_id": "CITY-101", "already_created": True}
    call(town, "update_ticket", {"status": "resolved"}, step="step-2")
    create, update = town.http.requests
    assert (create.method, create.path) == ("POST", "/tickets")
    assert create.json() == {"summary": "Brute force", "body": "d", "priority": "high", "queue": "",
                             "incident_id": "INC-1", "severity": "high", "source": "citysoc"}
    assert (update.method, update.path) == ("PATCH", "/tickets/CITY-101")
    assert update.json() == {"status": "resolved", "incident_id": "INC-1"}
    town.http.answers["/tickets"] = (201, {"data": {}})
    with pytest.raises(ActionError, match=r"without a ticket id at 'data\.key'"):
        call(town, "create_ticket", {"title": "x"}, step="step-3")


def test_containment_calls(town: City) -> None:
    call(town, "firewall_block", {"value": "10.20.5.66", "reason": "r", "duration_minutes": "60"})
    call(town, "firewall_block", {"value": "C2.Evil.Example.", "kind": "domain"}, step="s2")
    call(town, "disable_account", {"account": "cam-admin", "reason": "r"})
    ip, domain, account = town.http.requests
    assert ip.path == PATHS["firewall"]
    assert {k: ip.json()[k] for k in ("action", "type", "value", "duration_minutes")} == {
        "action": "block", "type": "ip", "value": "10.20.5.66", "duration_minutes": 60}
    assert domain.json()["value"] == "c2.evil.example"
    assert account.path == PATHS["identity"] and account.json()["account"] == "cam-admin"
    for name, args, message in (
        ("firewall_block", {"value": "10.20.5.666"}, "not an IP address"),
        ("firewall_block", {"value": "evil", "kind": "domain"}, "not a domain name"),
        ("disable_account", {"account": "a b"}, "not an account name"),
    ):
        with pytest.raises(ActionError, match=message):
            call(town, name, args)
    assert len(town.http.requests) == 3


def test_block_lists_are_appended_once(town: City) -> None:
    for _ in range(2):
        call(town, "block_ip", {"ip": "10.20.5.66", "reason": "two\nlines"})
        call(town, "block_domain", {"domain": "c2.evil.example"})
    assert (town.home / "blocklists" / "ip-blocklist.txt").read_text() == "10.20.5.66  # INC-1 two lines\n"
    assert (town.home / "blocklists" / "domain-blocklist.txt").read_text() == "c2.evil.example  # INC-1 \n"


def test_device_and_ot_commands_are_published(town: City) -> None:
    call(town, "isolate_device", {"device_id": "cam-0041", "reason": "r"})
    call(town, "release_device", {"device_id": "cam-0041"})
    call(town, "ot_safe_state", {"asset_id": "water-plc-ps3", "mode": "hold"})
    messages = town.mqtt.wait_for(3)
    topics = [t for t, _ in messages]
    assert topics == ["city/iot/cam-0041/command", "city/iot/cam-0041/command", "city/ot/water-plc-ps3/command"]
    quarantine, release, safe = (json.loads(p) for _, p in messages)
    assert (quarantine["command"], quarantine["device_id"], quarantine["incident_id"]) == ("quarantine", "cam-0041",
                                                                                           "INC-1")
    assert release["command"] == "release"
    assert (safe["command"], safe["mode"]) == ("safe-state", "hold")
    assert quarantine["request_id"] != release["request_id"]
    with pytest.raises(ActionError, match="mode must be one of"):
        call(town, "ot_safe_state", {"asset_id": "water-plc-ps3", "mode": "off"})


def _check(schema: dict[str, Any], value: Any, where: str = "$") -> None:
    """The subset of JSON Schema the escalation schema uses: type, const, enum, required, properties."""
    types = {"object": dict, "array": list, "string": str, "integer": int}
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], where
    if "type" in schema:
        assert isinstance(value, types[schema["type"]]), f"{where}: {value!r} is not {schema['type']}"
    if isinstance(value, dict):
        assert set(schema.get("required", ())) <= set(value), f"{where}: missing {set(schema['required']) - set(value)}"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), f"{where}: unexpected {set(value) - set(props)}"
        for key, item in value.items():
            sub = props.get(key) or schema.get("additionalProperties")
            if isinstance(sub, dict):
                _check(sub, item, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(schema["items"], item, f"{where}[{i}]")


def test_escalation_payload_follows_the_published_schema(town: City) -> None:
    town.store.create_incident(
        town.store.get_incident("INC-1").__class__(
            "INC-2", "Ransomware at the hospital", town.store.get_incident("INC-1").severity,
            town.store.get_incident("INC-1").status, town.store.get_incident("INC-1").created,
            town.store.get_incident("INC-1").created, town.store.get_incident("INC-1").created,
            town.store.get_incident("INC-1").created, "k2",
            entities={"asset.agency": ("Bach Mai Hospital",), "asset.sector": ("health",), "user.name": ("nurse7",),
                      "host.name": ("his-db-01",)},
        ),
        actor="test",
    )
    out = call(town, "escalate", VALID["escalate"] | {"situation": "emergency"}, incident_id="INC-2")
    [got] = town.http.requests
    payload = got.json()
    _check(escalation_schema(), payload)
    assert got.path == PATHS["ioc"] and got.header("Idempotency-Key") == payload["escalation_id"]
    assert payload["requested_actions"] == ["isolate cameras", "reset passwords"]
    assert payload["incident"]["agencies"] == ["Bach Mai Hospital"] and payload["incident"]["sectors"] == ["health"]
    assert "user.name" not in payload["incident"]["entities"]  # personal data stays in the SOC
    assert out["situation"] == "emergency"
    assert [e.kind for e in town.store.timeline("INC-2")][-1] == "escalation"
    with pytest.raises(ActionError, match="situation must be one of"):
        call(town, "escalate", VALID["escalate"] | {"situation": "urgent"})


def test_evidence_is_snapshotted_once(town: City) -> None:
    town.store.put_events([
        event(10, {"source.ip": "10.20.5.66", "event.dataset": "camera.platform", "message": "login failed"}),
        event(20, {"source.ip": "10.20.5.66", "event.dataset": "camera.platform", "message": "login failed"}),
        event(30, {"source.ip": "10.9.9.9", "event.dataset": "camera.platform", "message": "other host"}),
        event(9000, {"source.ip": "10.20.5.66", "event.dataset": "camera.platform", "message": "too late"}),
    ])
    out = call(town, "collect_evidence", {"limit": 50})
    assert out == {"events": 2, "datasets": ["camera.platform"]}
    assert call(town, "collect_evidence", {"limit": 50})["already_collected"] is True
    [entry] = [e for e in town.store.timeline("INC-1") if e.kind == "evidence"]
    assert [s["message"] for s in entry.data["snapshot"]] == ["login failed", "login failed"]
    assert entry.data["queries"] == ["source.ip=10.20.5.66"]


def test_enrich_finds_the_asset_and_the_indicator(town: City) -> None:
    AssetRegister([Asset("cam-0041", "Traffic camera 41", "Department of Transport", "traffic", "IoT", 2,
                         ips=("10.20.1.41",), device_ids=("cam-0041",))]).dump(town.home / "assets.json")
    intel = IntelStore(town.store.path)
    import_bundle(REPO / "tests" / "data" / "intel" / "city-feed.json", intel)
    intel.close()
    town.incident("INC-3", entities={"destination.ip": ("203.0.113.45",), "iot.device.id": ("cam-0041",),
                                     "source.ip": ("10.20.1.41", "10.99.0.1")})
    assert call(town, "enrich", {}, incident_id="INC-3") == {"assets": 1, "indicators": 1, "unknown": 2}
    [entry] = [e for e in town.store.timeline("INC-3") if e.kind == "enrichment"]
    assert entry.data["assets"][0]["asset.agency"] == "Department of Transport"
    assert entry.data["indicators"][0]["name"] == "Mirai C2 server"
    assert call(town, "enrich", {}, incident_id="INC-3")["already_done"] is True


def test_status_and_comment_are_idempotent(town: City) -> None:
    assert call(town, "set_status", {"status": "contained"}) == {"status": "contained", "changed": True}
    assert call(town, "set_status", {"status": "contained"}) == {"status": "contained", "changed": False}
    call(town, "add_comment", {"text": "x"})
    call(town, "add_comment", {"text": "x"})
    kinds = [e.kind for e in town.store.timeline("INC-1")]
    assert kinds.count("status") == 1 and kinds.count("comment") == 1
    assert town.store.get_incident("INC-1").status.value == "contained"
    with pytest.raises(ActionError, match="unknown status 'done'"):
        call(town, "set_status", {"status": "done"})


def test_a_busy_receiver_is_a_transient_error(town: City) -> None:
    town.http.answers[PATHS["firewall"]] = (503, {"error": "maintenance"})
    with pytest.raises(TransientActionError, match="HTTP 503"):
        call(town, "firewall_block", {"value": "10.20.5.66"})


def test_a_missing_connector_fails_a_real_run_and_is_a_finding_in_a_dry_run(town: City) -> None:
    args = {"to": "fire-rescue", "situation": "emergency", "summary": "x"}
    with pytest.raises(ActionError, match="connector 'fire-rescue' is not configured"):
        call(town, "escalate", args)
    out = call(town, "escalate", args, drill=True)
    assert out["simulated"] is True and "connector 'fire-rescue' is not configured" in out["not_configured"]
    assert town.received() == 0


@pytest.mark.parametrize("name", sorted(VALID))
def test_a_dry_run_says_what_it_would_do_and_changes_nothing(town: City, name: str) -> None:
    before = len(town.store.timeline("INC-1"))
    town.store.append_timeline("INC-1", "ticket", "test", {"connector": "ticketing", "ticket_id": "CITY-7", "key": "k"})
    out = call(town, name, VALID[name], drill=True)
    assert out["simulated"] is True
    town.mqtt.wait_for(1, timeout=0.05)
    assert town.received() == 0
    assert len(town.store.timeline("INC-1")) == before + 1
    assert not (town.home / "blocklists").exists()
    assert town.store.get_incident("INC-1").status.value == "new"


def test_a_manual_escalation_from_the_console_goes_through_the_escalate_action(town: City) -> None:
    from detections.triage import escalate
    from playbooks.escalation import ConnectorEscalator

    town.incident("INC-9", "PLC stop command", severity=Severity.CRITICAL)
    done = escalate(town.store, "INC-9", "ioc", "PLC stopped at pumping station 3", "analyst.le",
                    ConnectorEscalator(town.store, town.home))  # fmt: skip
    [got] = town.http.requests
    payload = got.json()
    _check(escalation_schema(), payload)
    assert done.delivered and done.reference == payload["escalation_id"] == got.header("Idempotency-Key")
    assert payload["situation"] == "emergency" and payload["summary"] == "PLC stopped at pumping station 3"
    assert payload["incident"]["id"] == "INC-9" and payload["responsible"] == "analyst.le"
    with pytest.raises(ActionError, match="not configured"):
        escalate(town.store, "INC-9", "nowhere", "x", "analyst.le", ConnectorEscalator(town.store, town.home))
    assert town.store.timeline("INC-9")[-1].data["delivered"] is False
