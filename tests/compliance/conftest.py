"""A small lab-like city for the compliance tests: five systems at security levels 1-5 with telemetry.

Built here (the tests never import the lab).  The period is 1-21 November 2026; the store's clock is
frozen inside it so incident timelines and audit entries fall where the scenario says.

| system        | level | domain | story                                                                   |
|---------------|-------|--------|-------------------------------------------------------------------------|
| portal-web    | 1     | IT     | fresh logs, level approved                                              |
| env-sensors   | 2     | IoT    | two air sensors reporting; no backup recorded                           |
| traffic-cams  | 3     | IoT    | cam-02's logs stop on 10 Nov; restore test recorded; no drill           |
| water-scada   | 4     | OT     | fresh logs; an incident closed in 2 h; a drill run; scan clean          |
| power-ems     | 5     | OT     | fresh logs; an incident still open; a meter that never reported         |
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import store.sqlite as sqlite_mod
from compliance.catalogue import load_catalogue
from compliance.engine import Assessment, assess
from compliance.evidence import Period
from enrichment.assets import Asset, AssetRegister
from store.compliance import ComplianceRecords
from store.event import Event, stable_id
from store.models import Alert, Incident, IncidentStatus, PlaybookRun, RunStatus, Severity
from store.sqlite import SQLiteStore

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
END = datetime(2026, 11, 21, tzinfo=timezone.utc)
PERIOD = Period(START, END)
RULES = {"IT": ("ssh-invalid-user",), "IoT": ("camera-login-failure",), "OT": ("modbus-write",)}

APPROVED = {"level_approved_on": "2026-03-12", "level_decision": "123/QD-STTTT"}


def _asset(id: str, system: str, level: int, domain: str, sector: str, **extra: Any) -> Asset:
    known = {k: v for k, v in extra.items() if k in Asset.__dataclass_fields__}
    rest = {k: v for k, v in extra.items() if k not in known}
    return Asset(
        id=id,
        name=id.replace("-", " ").title(),
        agency="Da Nang " + sector,
        sector=sector,
        domain=domain,
        security_level=level,
        system=system,
        extra=rest,
        **{**APPROVED, **known},
    )


def city_register() -> AssetRegister:
    return AssetRegister(
        [
            _asset("portal-web", "portal-web", 1, "IT", "egov", hostnames=("portal01",)),
            _asset("aq-01", "env-sensors", 2, "IoT", "environment", device_ids=("aq-01",), device_type="sensor"),
            _asset("aq-02", "env-sensors", 2, "IoT", "environment", device_ids=("aq-02",), device_type="sensor"),
            _asset(
                "cam-01",
                "traffic-cams",
                3,
                "IoT",
                "traffic",
                device_ids=("cam-01",),
                device_type="camera",
                last_backup="2026-11-15",
                last_restore_test="2026-10-02",
                last_risk_assessment="2026-06-30",
            ),
            _asset("cam-02", "traffic-cams", 3, "IoT", "traffic", device_ids=("cam-02",), device_type="camera"),
            _asset(
                "plc-1",
                "water-scada",
                4,
                "OT",
                "water",
                device_ids=("plc-1",),
                last_backup="2026-11-18",
                last_restore_test="2026-09-01",
                last_risk_assessment="2026-05-01",
            ),
            _asset("hmi-1", "water-scada", 4, "OT", "water", hostnames=("hmi01",)),
            _asset("ems-1", "power-ems", 5, "OT", "power", hostnames=("ems01",), last_backup="2026-11-19"),
            _asset("meter-9", "power-ems", 5, "IoT", "power", device_ids=("meter-9",), device_type="meter"),
        ]
    )


def _telemetry() -> list[Event]:
    events = []
    reporting = {"portal-web": 12, "aq-01": 6, "aq-02": 6, "cam-01": 6, "cam-02": 6, "plc-1": 6, "hmi-1": 6, "ems-1": 6}
    for asset_id, every in reporting.items():
        t = START + timedelta(minutes=7)
        while t < END:
            if asset_id == "cam-02" and t >= datetime(2026, 11, 10, tzinfo=timezone.utc):
                break  # the camera's logs stop arriving
            events.append(
                Event(
                    id=stable_id(asset_id, t.isoformat()),
                    timestamp=t,
                    fields={
                        "asset.id": asset_id,
                        "event.dataset": "test.telemetry",
                        "message": f"heartbeat {asset_id}",
                    },
                )
            )
            t += timedelta(hours=every)
    return events


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _incident(store: SQLiteStore, clock: Clock, iid: str, asset_id: str, at: datetime) -> Incident:
    clock.now = at + timedelta(minutes=4)
    store.create_incident(
        Incident(
            id=iid,
            title=f"Test incident on {asset_id}",
            severity=Severity.HIGH,
            status=IncidentStatus.NEW,
            created=clock.now,
            updated=clock.now,
            first_event_time=at,
            last_event_time=at,
            group_key=f"asset.id={asset_id}",
            mttd_seconds=240.0,
        ),
        actor="detections",
    )
    alert = Alert(
        id=f"A-{iid}",
        rule_id="r1",
        rule_title="Test rule",
        severity=Severity.HIGH,
        created=clock.now,
        event_time=at,
        event_ids=("e1",),
        entities={"asset.id": asset_id},
    )
    store.add_alert(alert)
    return store.attach_alert(iid, alert, actor="detections")


def _build(directory: Path) -> None:
    """Write the city's store and compliance records into ``directory`` (the store clock follows the story)."""
    clock = Clock(START)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite_mod, "_now", clock)
        store = SQLiteStore(directory / "citysoc.db")
        records = ComplianceRecords(directory / "compliance.db")
        try:
            store.put_events(_telemetry())
            _incident(store, clock, "INC-WATER", "plc-1", datetime(2026, 11, 12, 3, tzinfo=timezone.utc))
            clock.now += timedelta(hours=2)
            store.append_timeline("INC-WATER", "status", "analyst", {"value": "closed"})
            _incident(store, clock, "INC-POWER", "ems-1", datetime(2026, 11, 18, 9, tzinfo=timezone.utc))
            drill_at = datetime(2026, 11, 12, 6, tzinfo=timezone.utc)
            store.create_run(
                PlaybookRun(
                    id="RUN-DRILL",
                    playbook="ot-isolate",
                    playbook_version="1",
                    incident_id="INC-WATER",
                    status=RunStatus.SUCCEEDED,
                    created=drill_at,
                    updated=drill_at,
                    drill=True,
                )
            )
            for system, at, critical, high, total in (("water-scada", 5, 0, 0, 3), ("power-ems", 6, 1, 2, 9)):
                when = datetime(2026, 11, at, tzinfo=timezone.utc)
                records.add_scan(system, when, critical, high, total, "openvas", "officer", when)
        finally:
            store.close()
            records.close()


@pytest.fixture(scope="session")
def city_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The city's databases, built once per session and copied for each test (tests change them)."""
    directory = tmp_path_factory.mktemp("city")
    _build(directory)
    return directory


@pytest.fixture
def city(city_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for path in city_template.iterdir():
        shutil.copy2(path, tmp_path / path.name)
    clock = Clock(END - timedelta(hours=1))  # "now" for the store, inside the period
    monkeypatch.setattr(sqlite_mod, "_now", clock)
    store = SQLiteStore(tmp_path / "citysoc.db")
    records = ComplianceRecords(tmp_path / "compliance.db")
    try:
        yield {"store": store, "records": records, "register": city_register(), "clock": clock, "home": tmp_path}
    finally:
        store.close()
        records.close()


@pytest.fixture
def assessment(city: dict[str, Any]) -> Assessment:
    return assess(city["store"], city["register"], city["records"], load_catalogue(), PERIOD, RULES, END)
