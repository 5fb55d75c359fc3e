"""XSS payloads in every event field, incident, asset, agency and token name never run in the real browser.

Every text and keyword field of the schema (127 of them) holds each payload
in turn, across five events; incident titles, entities, comments, rule
titles, asset names and agencies, token names, datasets and dead letters hold
them too.  Each page is opened twice: with the console's CSP (no violation
may be reported: the page neither runs nor tries to run injected code) and
with the CSP bypassed (escaping alone must hold: nothing runs, no injected
element exists).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from console import tokens
from store.event import Event
from store.models import Alert, Incident, IncidentStatus, Severity
from store.schema import FIELDS, FieldType
from tests.console import seed_incident
from tests.console.browser import PAYLOADS, LiveConsole, login, new_trapped_page

PAGES = (
    "/incidents",
    "/incidents/inc-xss",
    "/incidents/inc-1",
    "/events",
    "/events?q=" + quote(PAYLOADS[0]),
    "/events?q=" + quote("user.name:" + PAYLOADS[3]),
    "/dashboards",
    "/dead-letters",
    "/runs",
    "/runs/run-1",
    "/approvals",
    "/admin/users",
    "/admin/users/scoped",
    "/admin/agencies",
    "/admin/tokens",
    "/admin/sources",
    "/account/tokens",
)


def hostile_events(now: datetime) -> list[Event]:
    """Five events; in each, every text and keyword field holds one of the payloads."""
    out = []
    for i, payload in enumerate(PAYLOADS):
        fields: dict[str, Any] = {}
        for name, spec in FIELDS.items():
            if name in ("@timestamp", "event.id") or spec.type not in (FieldType.KEYWORD, FieldType.TEXT):
                continue
            fields[name] = [payload] if spec.array else payload
        fields["labels.source"] = payload
        fields["iot.telemetry.reading"] = payload
        out.append(Event(timestamp=now - timedelta(minutes=5 + i), fields=fields, id=f"evt-xss-{i}"))
    return out


def seed(console: LiveConsole) -> None:
    store = console.store
    now = datetime.now(UTC)
    events = hostile_events(now)
    store.put_events(events)
    seed_incident(store, hostile=" ".join(PAYLOADS))
    alert = Alert(id="alert-xss", rule_id="rule-" + PAYLOADS[1], rule_title="Rule " + PAYLOADS[0],
                  severity=Severity.CRITICAL, created=now, event_time=now - timedelta(minutes=5),
                  event_ids=tuple(e.id for e in events),
                  entities={"asset.name": PAYLOADS[3], "user.name": PAYLOADS[1], "url.original": PAYLOADS[2]},
                  tags=("attack.t0855", PAYLOADS[4]), description=" ".join(PAYLOADS))  # fmt: skip
    store.add_alert(alert)
    incident = Incident(id="inc-xss", title="Incident " + PAYLOADS[3], severity=Severity.CRITICAL,
                        status=IncidentStatus.NEW, created=now, updated=now, first_event_time=now - timedelta(hours=1),
                        last_event_time=now - timedelta(minutes=5), group_key="g " + PAYLOADS[0],
                        entities={"asset.name": PAYLOADS, "asset.agency": PAYLOADS, "host.name": PAYLOADS,
                                  "url.original": (PAYLOADS[2],)}, tags=PAYLOADS)  # fmt: skip
    store.create_incident(incident, actor=PAYLOADS[1])
    store.attach_alert(incident.id, alert, actor="detections")
    store.append_timeline(incident.id, "comment", "analyst", {"text": " ".join(PAYLOADS)})
    register = [{"id": f"asset-{i}", "name": f"Pump {p}", "agency": f"Agency {p}", "sector": "water",
                 "domain": "OT", "security_level": 3, "system": p} for i, p in enumerate(PAYLOADS)]  # fmt: skip
    console.assets_path.write_text(json.dumps(register), encoding="utf-8")
    scoped = console.add_user("scoped", ("responder",), agencies=[f"Agency {p}" for p in PAYLOADS])
    owner = store.get_user(scoped.name)
    tokens.create_token(store, owner, owner, "Token " + PAYLOADS[0][:60], ("responder",))


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "csp-bypassed"])
def test_hostile_content_never_runs(live_console: LiveConsole, browser: Any, bypass_csp: bool) -> None:
    seed(live_console)
    admin = live_console.add_user("boss", ("admin",), mfa_enabled=True)
    page = new_trapped_page(browser, bypass_csp=bypass_csp)
    try:
        login(page, live_console, admin)
        for path in PAGES:
            response = page.goto(live_console.url + path)
            assert response is not None and response.status < 500, f"{path}: {response and response.status}"
            page.wait_for_load_state("networkidle")
            page.xss.assert_clean(page, path)
        # the hostile incident page is the one with the most markup from events: check its text survived intact
        page.goto(f"{live_console.url}/incidents/inc-xss")
        assert PAYLOADS[3] in page.inner_text("body")
        page.xss.assert_clean(page, "incident text")
    finally:
        page.context.close()


def test_a_scoped_responder_sees_escaped_agency_names(live_console: LiveConsole, page: Any) -> None:
    seed(live_console)
    scoped = live_console.store.get_user("scoped")
    live_console.store.put_user(replace(scoped, roles=("responder", "analyst")))
    login(page, live_console, live_console.add_user("resp2", ("responder",), agencies=[f"Agency {PAYLOADS[0]}"]))
    for path in ("/incidents", "/events", "/dashboards"):
        page.goto(live_console.url + path)
        page.wait_for_load_state("networkidle")
        page.xss.assert_clean(page, path)
