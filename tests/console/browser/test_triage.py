"""In the browser: an analyst triages an incident to closed with a verdict; the dashboard updates live."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from store.models import Incident, IncidentStatus, Severity
from tests.console import seed_incident
from tests.console.browser import LiveConsole, login


def test_triage_an_incident_to_closed_with_a_verdict(live_console: LiveConsole, page: Any) -> None:
    store = live_console.store
    incident = seed_incident(store).incident  # hostile strings in its alert, events and run
    analyst = live_console.add_user("ana", ("analyst",), mfa_enabled=True)
    login(page, live_console, analyst)

    page.goto(f"{live_console.url}/incidents?severity=high")
    page.click(f"a[href='/incidents/{incident.id}']")
    page.wait_for_selector("#verdict-form")
    page.xss.assert_clean(page, "incident page")

    page.select_option("#assignee", "ana")
    page.click("#assign-form button[type=submit]")
    assert "Assigned to ana." in page.inner_text(".flash-success")

    # a verdict without a reason is refused by the browser (required) -- and by the server
    page.check("#verdict-form input[value=true_positive]")
    page.fill("#verdict-reason", "Writes to the pump PLC from an engineering laptop outside the change window")
    page.click("#verdict-form button[type=submit]")
    assert "Verdict recorded: true positive." in page.inner_text(".flash-success")

    page.select_option("#status", "closed")
    page.click("#status-form button[type=submit]")
    assert "Status set to closed." in page.inner_text(".flash-success")
    assert page.text_content(".facts .badge.status-closed") == "closed"
    timeline = page.inner_text("#timeline")
    assert "Verdict: true positive" in timeline and "outside the change window" in timeline
    page.xss.assert_clean(page, "incident page after triage")

    closed = store.get_incident(incident.id)
    assert (closed.status, closed.verdict, closed.assignee) == (IncidentStatus.CLOSED, "true_positive", "ana")
    assert {"incident.assign", "incident.verdict", "incident.status"} <= {e.action for e in store.audit_entries()}


def test_the_dashboard_updates_without_reload(live_console: LiveConsole, page: Any) -> None:
    store = live_console.store
    seed_incident(store)
    analyst = live_console.add_user("ana", ("analyst",))
    login(page, live_console, analyst)
    page.goto(f"{live_console.url}/dashboards?days=2")
    page.wait_for_selector("#live[data-live-ok='1']", timeout=10_000)
    assert page.inner_text("[data-live=open_incidents]") == "1"
    now = datetime.now(UTC)
    store.create_incident(Incident(
        id="INC-LIVE", title="New one", severity=Severity.CRITICAL, status=IncidentStatus.NEW, created=now,
        updated=now, first_event_time=now, last_event_time=now, group_key="k"), actor="detections")  # fmt: skip
    # the page polls /api/v1/live (no reload): the counter follows the store
    page.wait_for_selector("[data-live=open_incidents]:text-is('2')", timeout=15_000)
    assert page.inner_text("[data-live=new_last_hour]") == "1"
    page.xss.assert_clean(page, "dashboard")
