"""The playbook library: conventions over every playbook, and a drill of each on a realistic incident.

Each drill runs the playbook with every action simulated against a configured
city (the connectors point at real receivers, which must receive nothing),
approvals scripted, and checks the report: which steps ran, who approved,
what each action would have done, and the triggers (a sample incident that
starts the playbook, one that must not).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.actions import REGISTRY
from playbooks.drill import DrillReport, approve_all, run_drill
from playbooks.model import APPROVAL, Playbook, PlaybookLibrary, default_library_path
from store.models import Alert, Incident, IncidentStatus, Severity
from tests.helpers import REPO, T0
from tests.playbooks.connectors.city import City, Receivers, city, receivers

LIBRARY = PlaybookLibrary.load([default_library_path()], REGISTRY)
FILES = sorted(default_library_path().glob("*.yml"))
#: alert sources that are not Sigma files: anomaly models, source health, threat intel
PROGRAMMATIC = {"citysoc-source-silent", "intel-indicator-match"} | {
    f"anomaly:{name}" for name in ("sensor-integrity", "ot-process", "ot-3sigma", "iot-device")
}
APPROVERS = approve_all(("lan.engineer", ["engineer"]), ("minh.responder", ["responder"]), ("admin", ["admin"]))


def _pack() -> tuple[set[str], set[str]]:
    ids: set[str] = set()
    tags: set[str] = set()
    for path in (REPO / "detections" / "rules").rglob("*.yml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                ids.add(str(doc.get("id")))
                tags.update(str(t).lower() for t in doc.get("tags") or ())
    return ids, tags


RULE_IDS, RULE_TAGS = _pack()


def test_the_library_holds_the_eight_scenarios() -> None:
    assert {p.id for p in LIBRARY} >= {
        "camera-compromise-ot-pivot", "falsified-sensor-data", "ot-write-from-unknown-host", "ddos-ioc-api",
        "personal-data-leak", "hospital-ransomware", "compromised-iot-device", "silent-critical-source",
    }


def test_the_library_page_describes_every_playbook() -> None:
    page = (REPO / "docs" / "playbook-library.md").read_text()
    missing = [p.id for p in LIBRARY if f"`{p.id}`" not in page]
    assert not missing, f"docs/playbook-library.md does not describe {missing}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_playbook_follows_the_conventions(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    playbook = LIBRARY.get(doc["id"])
    unknown = [r for r in playbook.trigger.rules if r not in RULE_IDS | PROGRAMMATIC]
    assert not unknown, f"{path.name}: trigger rules not in detections/rules: {unknown}"
    hits = [r for r in playbook.trigger.rules] + [t for t in playbook.trigger.tags if _tag_known(t)]
    assert hits, f"{path.name}: the trigger matches no rule id or tag of the pack"
    if doc["id"] == "camera-compromise-ot-pivot":
        return  # the original demo playbook, kept as it is
    scenario = doc["scenario"]
    assert "Decree 269" in scenario["legal_basis"]
    assert set(scenario["thresholds"]) == {"routine", "special", "emergency"}
    assert scenario["responsible"]["lead"] and scenario["coordination"]
    for step in playbook.steps:
        if step.kind == "action" and REGISTRY.get(step.action).impact.needs_approval:
            guards = playbook.guards[step.ref]
            assert guards and all(playbook.step(g).kind == APPROVAL for g in guards)


def _tag_known(tag: str) -> bool:
    tag = tag.lower()
    return any(t == tag or t.startswith(tag + ".") for t in RULE_TAGS)


# drills ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drill:
    playbook: str
    incident: Incident
    alert: Alert
    not_triggered_by: Alert
    #: step key -> substring expected in the JSON of what it would have done
    would: Mapping[str, str] = field(default_factory=dict)
    approvals: tuple[str, ...] = ()
    not_run: tuple[str, ...] = ()


def _incident(title: str, severity: Severity, entities: Mapping[str, tuple[str, ...]], tags: tuple[str, ...] = ()
              ) -> Incident:
    return Incident("INC-DRILL", title, severity, IncidentStatus.NEW, T0, T0, T0, T0 + timedelta(minutes=5),
                    "drill", entities=dict(entities), tags=tags, alert_count=3)


def _alert(rule_id: str, severity: Severity = Severity.HIGH, tags: tuple[str, ...] = ()) -> Alert:
    return Alert("ALR-DRILL", rule_id, rule_id, severity, T0, T0, (), tags=tags)


WATER = {"asset.id": ("water-plc-ps3",), "asset.name": ("Pumping station 3 PLC",),
         "asset.agency": ("Hanoi Water Company",), "asset.sector": ("water",), "asset.security_level": ("4",),
         "asset.criticality": ("critical",), "ot.plc.id": ("plc-ps3",)}

CAMERA = {"asset.id": ("cam-0041",), "asset.name": ("Traffic camera, Trang Tien x Hang Bai",),
          "asset.agency": ("Department of Transport",), "asset.sector": ("traffic",), "iot.device.id": ("cam-0041",)}

DRILLS = [
    Drill(
        "camera-compromise-ot-pivot",
        _incident("Camera credential brute force", Severity.HIGH, {**CAMERA, "source.ip": ("10.20.5.66",)}),
        _alert("0f6f3a43-4f0e-4c70-8d0b-6a5a2c0d1b02", Severity.HIGH, ("attack.t1110",)),
        _alert("5d0b7c0e-3f8e-4d53-9a1e-0c1f7b2a9e01", Severity.HIGH),
        would={"block-source": '"blocked": "10.20.5.66"', "contained": '"status": "contained"'},
        not_run=("escalate",),
    ),
    Drill(
        "falsified-sensor-data",
        _incident("Anomaly in pumping station 3: tank level disagrees with inflow", Severity.CRITICAL, WATER),
        _alert("anomaly:sensor-integrity", Severity.CRITICAL, ("anomaly", "ot")),
        _alert("5d0b7c0e-3f8e-4d53-9a1e-0c1f7b2a9e01", Severity.CRITICAL),
        would={"manual-control[0]": "city/ot/water-plc-ps3/command", "inform-ioc": '"situation": "emergency"',
               "tell-ot": "ot1@water.city.example"},
        approvals=("approve-manual",),
        not_run=("routine", "no-decision"),
    ),
    Drill(
        "ot-write-from-unknown-host",
        _incident("Modbus write from a host outside the engineering network", Severity.HIGH,
                  {**WATER, "source.ip": ("10.20.5.66",)}),
        _alert("9e4d2b10-7c3a-4e5f-a1b2-c3d4e5f60705", Severity.HIGH, ("attack.t0855",)),
        _alert("5d0b7c0e-3f8e-4d53-9a1e-0c1f7b2a9e01", Severity.HIGH),
        would={"block-source[0]": "/firewall/rules", "manual-control[0]": "city/ot/water-plc-ps3/command",
               "inform-ioc": '"situation": "special"', "police": "/police/escalations",
               "page-ot": "ot2@water.city.example"},
        approvals=("approve-manual",),
        not_run=("block-list", "no-decision"),
    ),
    Drill(
        "ddos-ioc-api",
        _incident("Request flood on the Operations-Centre API", Severity.HIGH,
                  {"source.ip": ("198.51.100.7", "198.51.100.8", "203.0.113.9"), "asset.id": ("ioc-portal",)}),
        _alert("87fbaefc-044d-5523-bba6-d1713fd57aa4", Severity.HIGH, ("attack.t1499.002",)),
        _alert("5fcc8b15-61fd-5597-b619-151a55260d1e", Severity.HIGH),
        would={"block-sources[2]": '"value": "203.0.113.9"', "tell-platform": "3 sources blocked",
               "inform-ioc": '"situation": "special"'},
        not_run=("upstream",),
    ),
    Drill(
        "personal-data-leak",
        _incident("API key used from many addresses", Severity.HIGH,
                  {"user.name": ("api-svc-traffic",), "source.ip": ("198.51.100.7", "198.51.100.8"),
                   "asset.id": ("data-platform",), "asset.agency": ("Department of Information and Communications",)}),
        _alert("0a25031f-da25-5fde-8857-363f458347e2", Severity.HIGH, ("attack.t1528",)),
        _alert("6db93847-2bfc-5492-943e-d0d70b7081d5", Severity.HIGH),
        would={"disable-accounts[0]": '"account": "api-svc-traffic"', "block-sources[1]": "198.51.100.8",
               "notify-authority": "/a05/personal-data-breaches", "tell-dpo": "dpo@data.city.example"},
    ),
    Drill(
        "hospital-ransomware",
        _incident("Threat-intel indicator matched: ransomware C2", Severity.CRITICAL,
                  {"asset.sector": ("health",), "asset.agency": ("Bach Mai Hospital",), "user.name": ("nurse07",),
                   "destination.ip": ("203.0.113.45",), "host.name": ("his-app-02",)}),
        _alert("intel-indicator-match", Severity.HIGH, ("stix.indicator--x",)),
        _alert("2b8f6e3d-1a9c-4d7e-8f0a-b1c2d3e4f506", Severity.HIGH, ("attack.t1110.003",)),
        would={"divert": '"situation": "emergency"', "block-c2[0]": "203.0.113.45",
               "tell-hospital": "it@hospital.city.example", "police": "Bach Mai Hospital"},
        not_run=("health-special",),
    ),
    Drill(
        "compromised-iot-device",
        _incident("IoT device connecting to an external destination", Severity.HIGH,
                  {**CAMERA, "destination.ip": ("198.51.100.23",)}),
        _alert("e68f9e7d-a929-5a87-b729-19c5dba22c95", Severity.MEDIUM, ("attack.t0869",)),
        _alert("5d0b7c0e-3f8e-4d53-9a1e-0c1f7b2a9e01", Severity.HIGH),
        would={"quarantine[0]": "city/iot/cam-0041/command", "block-c2[0]": "198.51.100.23",
               "ticket": "Department of Transport"},
        approvals=("approve-quarantine",),
        not_run=("block-list", "quarantine-failed", "no-decision"),
    ),
    Drill(
        "silent-critical-source",
        _incident("Log source silent", Severity.HIGH, {"service.name": ("scada-historian-ps3",),
                                                        "asset.domain": ("OT",), "asset.area": ("Ba Dinh",)}),
        _alert("citysoc-source-silent", Severity.HIGH, ("citysoc.source_health",)),
        _alert("intel-indicator-match", Severity.HIGH),
        would={"confirm-process": '"situation": "special"', "tell-collectors": "collectors@soc.city.example",
               "note": "scada-historian-ps3"},
        not_run=("routine",),
    ),
]


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


def test_every_library_playbook_has_a_drill() -> None:
    assert {d.playbook for d in DRILLS} == {p.id for p in LIBRARY}


@pytest.mark.parametrize("drill", DRILLS, ids=[d.playbook for d in DRILLS])
def test_drill(drill: Drill, town: City) -> None:
    playbook = LIBRARY.get(drill.playbook)
    assert playbook.trigger.matches(drill.incident, drill.alert, None)
    assert not playbook.trigger.matches(drill.incident, drill.not_triggered_by, None)
    report = run_drill(town.store, playbook, drill.incident, APPROVERS, home=town.home)
    _check_report(report, drill, playbook)
    town.mqtt.wait_for(1, timeout=0.05)
    assert town.received() == 0, "a drill sent something for real"
    assert not (town.home / "blocklists").exists()
    assert "| would have |" in report.to_markdown()


def _check_report(report: DrillReport, drill: Drill, playbook: Playbook) -> None:
    by_key = {s.key: s for s in report.steps}
    failed = {k: s.error for k, s in by_key.items() if s.status == "failed"}
    assert report.status == "succeeded", f"{report.status}: {report.error}; failed steps: {failed}"
    for key, expected in drill.would.items():
        text = json.dumps(by_key[key].would_have, ensure_ascii=False, default=str)
        assert expected in text, f"{key} would have: {text}"
        assert by_key[key].would_have.get("simulated") is True
    assert [a.step for a in report.approvals] == list(drill.approvals)
    for approval in report.approvals:
        assert approval.status == "approved" and len(approval.decisions) >= approval.quorum
    for key in drill.not_run:
        assert by_key[key].status == "skipped", f"{key} ran: {by_key[key]}"
    ran = [s for s in report.steps if s.kind == "action" and s.status == "succeeded"]
    assert all(isinstance(s.would_have, Mapping) and _simulated(s.would_have) for s in ran)


def _simulated(output: Mapping[str, Any]) -> bool:
    # a foreach parent records its items; every real call recorded is a dry-run
    return bool(output.get("simulated")) or "items" in output


def test_an_unapproved_drill_stops_before_the_ot_write(town: City) -> None:
    drill = DRILLS[1]
    report = run_drill(town.store, LIBRARY.get(drill.playbook), replace(drill.incident, id="INC-NOAPPROVAL"), None,
                       home=town.home)
    by_key = {s.key: s for s in report.steps}
    assert report.approvals[0].status == "awaiting"
    assert not any(k.startswith("manual-control[") for k in by_key) or by_key["manual-control"].status == "skipped"
