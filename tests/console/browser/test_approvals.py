"""In the browser: a responder approves a playbook step from the inbox and watches the run finish live."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from playbooks.actions import REGISTRY
from playbooks.model import PlaybookLibrary
from playbooks.runner import Runner, new_run
from store.base import Store
from store.models import IncidentStatus, RunStatus, StepStatus
from tests.console import seed_incident
from tests.console.browser import LiveConsole, login

PLAYBOOKS = Path(__file__).resolve().parent.parent.parent / "data" / "console" / "playbooks"


def _drive(store: Store, home: Path, run_id: str | None, incident_id: str) -> str:
    """Start (or continue) a run of the test playbook as the workers would, until it waits or ends."""
    library = PlaybookLibrary.load([PLAYBOOKS], REGISTRY)
    queue: deque[tuple[str, str, int]] = deque()
    runner = Runner(store, library, REGISTRY, home, send=lambda r, k, a, i: queue.append((r, k, a)))
    if run_id is None:
        run_id = new_run(store, library.get("approve-then-contain"), incident_id, REGISTRY).id
    runner.drive(run_id)
    while queue:
        runner.execute(*queue.popleft())
    return run_id


def test_approve_a_step_and_see_the_run_finish(live_console: LiveConsole, page: Any, tmp_path: Path) -> None:
    store = live_console.store
    incident = seed_incident(store).incident  # hostile strings in its alert, events and the seeded run
    run_id = _drive(store, tmp_path, None, incident.id)
    assert store.get_run(run_id).steps[0].status is StepStatus.RUNNING
    responder = live_console.add_user("duty", ("responder",), mfa_enabled=True)
    login(page, live_console, responder)

    page.goto(f"{live_console.url}/approvals")
    assert "Mark the pumping-station incident contained" in page.inner_text("#approval-1")
    page.fill("#reason-1", "pump verified offline by the operator")
    page.click("#approval-1 button[value=approve]")
    page.wait_for_selector(".flash-success")
    assert "is settled" in page.inner_text(".flash-success")
    assert page.inner_text("#no-approvals").startswith("No approval is waiting")
    step = store.get_run(run_id).steps[0]
    assert step.status is StepStatus.SUCCEEDED and step.output["decisions"][0]["reason"].startswith("pump verified")

    # the run page polls the API: when the workers carry the run on, the page shows it without reload
    page.goto(f"{live_console.url}/runs/{run_id}")
    assert page.text_content("#run-status") in ("running", "pending", "waiting")
    _drive(store, tmp_path, run_id, incident.id)
    assert store.get_run(run_id).status is RunStatus.SUCCEEDED
    page.wait_for_selector("#run-status.run-succeeded", timeout=10_000)  # set by playbooks.js from the API
    assert page.text_content("#run-status") == "succeeded"
    assert page.text_content("tr[data-ref=contained] [data-field=status]") == "succeeded"
    assert store.get_incident(incident.id).status is IncidentStatus.CONTAINED
    page.goto(f"{live_console.url}/runs/run-1")  # the seeded run's hostile step output, escaped
    page.xss.assert_clean(page)
