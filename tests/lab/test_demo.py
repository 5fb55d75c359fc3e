"""The foundation pipeline end to end.

lab -> syslog/files -> store -> Sigma -> incident -> Celery playbook -> console.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import scenario
from lab.demo import DemoError, DemoResult, prepare_home, run_demo
from store.models import IncidentStatus, RunStatus, StepStatus
from store.sqlite import SQLiteStore
from tests.helpers import T0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, DemoResult]]:
    home = tmp_path_factory.mktemp("demo-home")
    old = os.environ.get("CITYSOC_HOME")
    os.environ["CITYSOC_HOME"] = str(home)
    try:
        yield home, run_demo(seed=7)
    finally:
        if old is None:
            os.environ.pop("CITYSOC_HOME", None)
        else:
            os.environ["CITYSOC_HOME"] = old


def test_attack_chain_becomes_one_incident_with_its_alerts_and_entities(demo_home: tuple[Path, DemoResult]) -> None:
    home, result = demo_home
    store = SQLiteStore(home / "citysoc.db")
    expected_events = len(scenario.benign(7, T0)) - 1 + len(scenario.attack(7, T0))  # minus the malformed one
    assert result.events == store.count_events() == expected_events
    [incident] = store.list_incidents()  # benign traffic raised nothing
    assert incident.group_key == f"source.ip={scenario.ATTACKER_IP}"
    titles = sorted({a.rule_title for a in store.list_alerts(incident_id=incident.id)})
    assert titles == [
        "Camera Credential Brute Force",
        "Camera Login With a Factory Default Account",
        "Modbus Write From a Host Outside the Engineering Network",
    ]
    assert result.alerts == store.count_alerts() == incident.alert_count
    assert incident.entities["source.ip"] == (scenario.ATTACKER_IP,)
    assert set(incident.entities["destination.ip"]) == {scenario.CAMERA["ip"], scenario.PLC_IP}
    assert "Hanoi Water Company" in incident.entities["asset.agency"]
    assert "4" in incident.entities["asset.security_level"]
    assert {"attack.t1110.001", "attack.t1078.001", "attack.t0855"} <= set(incident.tags)
    assert incident.severity.label == "critical"  # a high rule on a security-level-4 PLC
    assert incident.mttd_seconds is not None and 0 <= incident.mttd_seconds < 30
    assert result.mttd_seconds == round(incident.mttd_seconds, 3)
    # the brute-force alert carries the failed logins, not the benign ones
    brute = next(a for a in store.list_alerts(incident_id=incident.id) if a.rule_title.startswith("Camera Cred"))
    failed = store.get_events(brute.event_ids)
    assert len(failed) == 5 and {e.get("user.name") for e in failed} == {"admin"}
    assert all(e.get("source.ip") == scenario.ATTACKER_IP for e in failed)
    store.close()


def test_playbook_ran_on_the_worker_and_contained_the_source(demo_home: tuple[Path, DemoResult]) -> None:
    home, result = demo_home
    store = SQLiteStore(home / "citysoc.db")
    [incident] = store.list_incidents()
    # other playbooks of the library may trigger on the same incident too; this one is the lab's
    runs = {r.playbook: r for r in store.list_runs(incident_id=incident.id)}
    run = runs["camera-compromise-ot-pivot"]
    assert result.playbook_runs == len(runs) and result.runs_succeeded >= 1
    assert run.status is RunStatus.SUCCEEDED
    steps = {s.ref: s for s in run.steps}
    assert steps["evidence"].status is StepStatus.SUCCEEDED and steps["evidence"].output["events"] >= 5
    assert steps["block-source"].output["blocked"] == scenario.ATTACKER_IP
    assert steps["escalate"].status is StepStatus.PENDING
    blocklist = (home / "blocklists" / "ip-blocklist.txt").read_text()
    assert blocklist.splitlines()[0].startswith(f"{scenario.ATTACKER_IP}  # {incident.id}")
    assert store.get_incident(incident.id).status is IncidentStatus.CONTAINED
    kinds = [t.kind for t in store.timeline(incident.id)]
    assert kinds[0] == "created" and {"alert", "evidence", "status", "playbook"} <= set(kinds)
    assert store.verify_audit() > 0
    store.close()


def test_malformed_record_is_dead_lettered_and_the_pipeline_goes_on(demo_home: tuple[Path, DemoResult]) -> None:
    home, result = demo_home
    store = SQLiteStore(home / "citysoc.db")
    [dead] = store.list_dead_letters()
    assert result.dead_letters == 1
    assert dead.raw == scenario.MALFORMED_CAMERA_LINE
    assert dead.source.endswith(scenario.CAMERA_FILE) and dead.offset.isdigit()
    assert "camera.platform" in dead.reason
    # records after the bad line in the same file were stored
    assert store.search_events(filters={"event.dataset": "camera.platform"}, limit=1000)
    store.close()


def test_console_shows_the_incident_with_hostile_content_escaped(demo_home: tuple[Path, DemoResult]) -> None:
    from console.app import create_app
    from console.auth import create_user

    home, _ = demo_home
    store = SQLiteStore(home / "citysoc.db")
    [incident] = store.list_incidents()
    create_user(store, "analyst1", "correct horse battery staple", ("analyst",), False)
    app = create_app({"STORE_URL": f"sqlite:///{home / 'citysoc.db'}", "TESTING": True, "SECRET_KEY": "t"})
    client = app.test_client()
    login = client.get("/login")
    token = login.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/login", data={"username": "analyst1", "password": "correct horse battery staple", "csrf_token": token}
    )
    page = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    assert incident.id in page and "Camera Credential Brute Force" in page and "block-source" in page
    assert "<script>alert('xss')</script>" not in page
    assert "&lt;script&gt;alert(" in page
    store.close()


def test_demo_refuses_a_home_with_foreign_data(tmp_path: Path) -> None:
    (tmp_path / "citysoc.db").write_text("not the demo's")
    with pytest.raises(DemoError, match="did not create"):
        prepare_home(tmp_path)
    assert (tmp_path / "citysoc.db").read_text() == "not the demo's"


def test_cli_demo_no_serve_prints_the_summary(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "console.cli", "demo", "--no-serve"],
        env={**os.environ, "CITYSOC_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.strip().splitlines()  # the summary is the only thing on stdout
    summary = json.loads(line)
    assert set(summary) == {"events", "alerts", "incidents", "playbook_runs", "mttd_seconds"}
    assert summary["events"] > 0 and summary["alerts"] > 0
    assert summary["incidents"] >= 1 and summary["playbook_runs"] >= 1
    assert isinstance(summary["mttd_seconds"], float)
