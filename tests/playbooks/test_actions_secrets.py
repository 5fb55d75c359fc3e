"""Connector secrets are used (the receivers check them) but never appear in logs, run records, audit or timeline."""

from __future__ import annotations

import base64
import json
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from playbooks.actions import REGISTRY
from playbooks.model import Playbook, PlaybookLibrary
from playbooks.runner import Runner, new_run
from store.models import RunStatus, StepStatus
from tests.playbooks.connectors.city import PATHS, SECRETS, City, city, receivers
from tests.playbooks.connectors.receivers import Received

PLAYBOOK = {
    "id": "secret-check",
    "steps": [
        {"ref": "ticket", "action": "create_ticket", "args": {"title": "{{ incident.title }}"}},
        {"ref": "firewall", "action": "firewall_block", "args": {"value": "{{ entities['source.ip'][0] }}"}},
        {"ref": "account", "action": "disable_account", "args": {"account": "cam-admin"}},
        {"ref": "mail", "action": "notify_email",
         "args": {"to": "duty@city.example", "subject": "{{ incident.title }}", "body": "see the console"}},
        {"ref": "device", "action": "release_device", "args": {"device_id": "cam-0041"}},
        {"ref": "ioc", "action": "escalate",
         "args": {"to": "ioc", "situation": "special", "summary": "{{ incident.title }}"}},
        # this receiver answers 500 and echoes the credentials it got: the step fails with them in the error text
        {"ref": "police", "action": "escalate",
         "args": {"to": "police-cyber", "situation": "special", "summary": "x"}, "on_failure": "note"},
        {"ref": "note", "action": "add_comment", "args": {"text": "police escalation failed"}},
    ],
}


def _echo(got: Received) -> tuple[int, Any]:
    if got.path == PATHS["police-cyber"]:
        return 500, {"error": "rejected", "you_sent": got.header("Authorization")}
    return 201, {"data": {"key": "CITY-9"}} if got.path == PATHS["ticketing"] else {"ok": True}


@pytest.fixture
def town(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[City]:
    for name in ("CITYSOC_SECRETS_KEY", "CITYSOC_CONNECTORS", "CITYSOC_ASSETS"):
        monkeypatch.delenv(name, raising=False)
    with receivers(tmp_path / "rx", with_secrets=True) as rx, city(tmp_path, rx) as c:
        c.incident()
        yield c


def test_secrets_reach_the_receivers_and_nothing_else(town: City, caplog: pytest.LogCaptureFixture) -> None:
    town.http.responder = _echo
    playbook = Playbook.from_dict(PLAYBOOK, REGISTRY, source="secret-check.yml")
    queue: deque[tuple[str, str, int]] = deque()
    runner = Runner(town.store, PlaybookLibrary([playbook]), REGISTRY, town.home,
                    send=lambda run_id, key, attempt, _idempotent: queue.append((run_id, key, attempt)))
    with caplog.at_level(logging.DEBUG):
        run = new_run(town.store, playbook, "INC-1", REGISTRY)
        runner.drive(run.id)
        while queue:
            runner.execute(*queue.popleft())
        town.mqtt.wait_for(1)
    final = town.store.get_run(run.id)

    # the credentials were used: every receiver got (and checked) its secret
    by_path = {r.path: r for r in town.http.requests}
    assert by_path[PATHS["ticketing"]].header("Authorization") == f"Bearer {SECRETS['tickets-token']}"
    assert by_path[PATHS["firewall"]].header("X-Api-Key") == SECRETS["firewall-key"]
    basic = base64.b64encode(f"soar:{SECRETS['identity-password']}".encode()).decode()
    assert by_path[PATHS["identity"]].header("Authorization") == f"Basic {basic}"
    assert by_path[PATHS["ioc"]].header("Authorization") == f"Bearer {SECRETS['ioc-token']}"
    assert town.smtp.logins == [("citysoc", SECRETS["smtp-password"])] and len(town.smtp.messages) == 1
    assert [t for t, _ in town.mqtt.messages] == ["city/iot/cam-0041/command"]  # the broker required the password

    # the run went as planned, and the failing step's error held the echoed secret -- masked
    steps = {s.ref: s for s in final.steps}
    assert final.status is RunStatus.FAILED
    assert all(steps[r].status is StepStatus.SUCCEEDED for r in ("ticket", "firewall", "account", "mail", "device",
                                                                 "ioc", "note"))
    assert steps["police"].status is StepStatus.FAILED and "[secret:ioc-token]" in (steps["police"].error or "")

    records = json.dumps([asdict(s) for s in final.steps], default=str) + json.dumps(asdict(final), default=str)
    audit = json.dumps([asdict(e) for e in town.store.audit_entries(limit=10_000)], default=str)
    timeline = json.dumps([asdict(e) for e in town.store.timeline("INC-1")], default=str)
    stored = (town.home / "secrets.json").read_text() + (town.home / "connectors.yml").read_text()
    basic_forms = {basic}
    for name, value in SECRETS.items():
        for where, text in (("run records", records), ("audit log", audit), ("timeline", timeline),
                            ("logs", caplog.text), ("config and secrets files", stored)):
            assert value not in text, f"secret {name} appears in the {where}"
    for form in basic_forms:
        assert form not in records + audit + timeline + caplog.text
    assert "step.failed" in audit or "police" in audit  # the failure was audited (without the secret)
