"""The evidence engine on the lab-like city: specific controls pass or fail from the data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from compliance.catalogue import load_catalogue
from compliance.engine import CITY, Assessment, assess
from compliance.errors import EvidenceError
from compliance.evidence import REGISTRY, Period, Status, evidence
from store.models import User
from tests.compliance.conftest import END, PERIOD, RULES


def status(a: Assessment, subject: str, control: str) -> Status:
    return a.result(subject, control).status


def test_level3_system_whose_logs_stopped_fails_monitoring(assessment: Assessment) -> None:
    result = assessment.result("traffic-cams", "SL.OPS.MONITORING")
    assert result.status is Status.FAIL
    assert result.result.reason == "reason.logs_stopped"
    assert result.result.failing == ("cam-02",)
    assert result.result.facts["assets"]["cam-02"]["last"].startswith("2026-11-09")


def test_same_system_passes_monitoring_for_a_period_before_the_logs_stopped(city: dict[str, Any]) -> None:
    early = Period(datetime(2026, 11, 2, tzinfo=timezone.utc), datetime(2026, 11, 9, tzinfo=timezone.utc))
    result = assess(city["store"], city["register"], city["records"], load_catalogue(), early, RULES, END)
    assert status(result, "traffic-cams", "SL.OPS.MONITORING") is Status.PASS


def test_recorded_restore_test_passes_backup_and_missing_one_fails(assessment: Assessment) -> None:
    assert status(assessment, "traffic-cams", "SL.DATA.BACKUP") is Status.PASS
    ems = assessment.result("power-ems", "SL.DATA.BACKUP")  # backed up, never restore-tested
    assert ems.status is Status.FAIL and ems.result.args["what"] == "last_restore_test"
    assert status(assessment, "env-sensors", "SL.DATA.BACKUP") is Status.FAIL


def test_drill_control_follows_drill_runs(assessment: Assessment) -> None:
    assert status(assessment, "traffic-cams", "SL.DRILL") is Status.FAIL
    assert assessment.result("traffic-cams", "SL.DRILL").result.reason == "reason.no_drill"
    water = assessment.result("water-scada", "SL.DRILL")
    assert water.status is Status.PASS and water.result.facts["runs"][0]["id"] == "RUN-DRILL"


def test_incidents_mttd_mttr_and_open_incident(assessment: Assessment) -> None:
    water = assessment.result("water-scada", "SL.OPS.INCIDENTS")
    assert water.status is Status.PASS
    assert water.result.facts["mttd_seconds"] == 240.0
    assert water.result.facts["mttr_seconds"] == 7200.0
    power = assessment.result("power-ems", "SL.OPS.INCIDENTS")
    assert power.status is Status.FAIL and power.result.failing == ("INC-POWER",)


def test_unmonitored_system_without_incidents_fails(assessment: Assessment, city: dict[str, Any]) -> None:
    quiet = Period(datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2025, 2, 1, tzinfo=timezone.utc))
    result = assess(city["store"], city["register"], city["records"], load_catalogue(), quiet, RULES, END)
    incidents = result.result("portal-web", "SL.OPS.INCIDENTS")
    assert incidents.status is Status.FAIL and incidents.result.reason == "reason.no_monitoring"


def test_vulnerabilities_and_risk(assessment: Assessment) -> None:
    assert status(assessment, "water-scada", "SL.VULN.MANAGEMENT") is Status.PASS
    assert assessment.result("power-ems", "SL.VULN.MANAGEMENT").result.args == {"critical": 1, "high": 2}
    assert status(assessment, "traffic-cams", "SL.VULN.MANAGEMENT") is Status.FAIL  # never scanned
    assert status(assessment, "water-scada", "SL.RISK.ASSESSMENT") is Status.PASS
    assert status(assessment, "power-ems", "SL.RISK.ASSESSMENT") is Status.FAIL


def test_detection_rules_need_a_known_pack(assessment: Assessment, city: dict[str, Any]) -> None:
    assert status(assessment, "water-scada", "SL.OPS.DETECTION") is Status.PASS
    unknown = assess(city["store"], city["register"], city["records"], load_catalogue(), PERIOD, None, END)
    assert unknown.result("water-scada", "SL.OPS.DETECTION").result.reason == "reason.rules_unknown"
    no_ot = assess(city["store"], city["register"], city["records"], load_catalogue(), PERIOD, {"IT": ("x",)}, END)
    assert no_ot.result("water-scada", "SL.OPS.DETECTION").status is Status.FAIL


def test_mfa_without_evidence_fails(assessment: Assessment, city: dict[str, Any]) -> None:
    assert assessment.result("water-scada", "SL.ACCESS.MFA").result.reason == "reason.no_users"
    city["store"].put_user(User("officer", "x", ("admin",)))
    result = assess(city["store"], city["register"], city["records"], load_catalogue(), PERIOD, RULES, END)
    mfa = result.result("water-scada", "SL.ACCESS.MFA")
    assert mfa.status is Status.FAIL
    assert mfa.result.reason in ("reason.mfa_not_recorded", "reason.mfa_missing")


def test_manual_controls_fail_until_attested(assessment: Assessment, city: dict[str, Any]) -> None:
    assert status(assessment, "water-scada", "SL.M1.POLICY") is Status.FAIL
    records = city["records"]
    at = datetime(2026, 11, 3, tzinfo=timezone.utc)
    records.add_attestation("SL.M1.POLICY", "water-scada", "officer", at, "policy.pdf", "ab" * 32, at + timedelta(365))
    result = assess(city["store"], city["register"], records, load_catalogue(), PERIOD, RULES, END)
    policy = result.result("water-scada", "SL.M1.POLICY")
    assert policy.status is Status.MANUAL
    assert policy.result.facts["actor"] == "officer" and policy.result.facts["sha256"] == "ab" * 32
    assert status(result, "traffic-cams", "SL.M1.POLICY") is Status.FAIL  # attestations are per system


def test_not_covered_and_level_scoping(assessment: Assessment) -> None:
    assert status(assessment, "portal-web", "SL.PHYSICAL") is Status.NOT_COVERED
    portal = {r.control.id for r in assessment.system_results["portal-web"]}
    assert "SL.OPS.MONITORING" not in portal and "SL.DRILL" not in portal  # level 1
    assert "SL.DRILL" in {r.control.id for r in assessment.system_results["power-ems"]}


def test_city_kpis_with_drill_down(assessment: Assessment) -> None:
    kpi = assessment.result(CITY, "L3.N2.PN1.01")
    assert kpi.status is Status.FAIL and kpi.result.value == 0.0
    assert set(kpi.result.failing) == {"portal-web", "env-sensors", "traffic-cams"}
    meters = assessment.result(CITY, "KPI.DEV.METERS")
    assert meters.status is Status.FAIL and meters.result.failing == ("meter-9",)
    cameras = assessment.result(CITY, "KPI.DEV.CAMERAS")  # cam-02 went silent on 10 Nov: not connected now
    assert cameras.result.value == 50.0 and cameras.result.failing == ("cam-02",)
    sensors = assessment.result(CITY, "KPI.DEV.SENSORS")
    assert sensors.status is Status.PASS and sensors.result.value == 100.0
    soc = assessment.result(CITY, "V.NS.20.01")
    assert soc.status is Status.FAIL and set(soc.result.failing) == {"traffic-cams", "power-ems"}


def test_every_automatic_control_names_a_registered_query_of_its_scope() -> None:
    for control in load_catalogue().controls:
        if control.evidence.query:
            assert control.evidence.query in REGISTRY, control.id
            assert REGISTRY[control.evidence.query].scope == control.scope, control.id


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(EvidenceError, match="registered twice"):
        evidence("log_sources_fresh")(REGISTRY["log_sources_fresh"].func)


def test_period_must_be_ordered() -> None:
    with pytest.raises(EvidenceError, match="not after"):
        Period(END, END)


def test_mfa_passes_when_every_user_who_sees_the_system_is_enrolled(city: dict[str, Any]) -> None:
    store = city["store"]
    store.put_user(User("soc", "x", ("analyst",), mfa_enabled=True))
    store.put_user(User("power-only", "x", ("compliance",), agencies=("Da Nang power",)))
    result = assess(store, city["register"], city["records"], load_catalogue(), PERIOD, RULES, END)
    assert result.result("water-scada", "SL.ACCESS.MFA").status is Status.PASS
    power = result.result("power-ems", "SL.ACCESS.MFA")
    assert power.status is Status.FAIL and power.result.failing == ("power-only",)
