"""Open-format exports (JSON/CSV) of the register, incidents and evidence; CSV is injection-safe."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from compliance.engine import Assessment
from compliance.errors import ComplianceError
from compliance.export import export, safe_cell
from enrichment.assets import Asset, AssetRegister


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(value: str) -> None:
    assert safe_cell(value) == "'" + value


def test_register_csv_is_injection_safe(city: dict[str, Any]) -> None:
    register = AssetRegister(
        [Asset(id="x1", name="=cmd|' /C calc'!A0", agency="a", sector="s", domain="IT", security_level=1)]
    )
    text = export("register", "csv", city["store"], "officer", register=register)
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["name"] == "'=cmd|' /C calc'!A0"
    entry = city["store"].audit_entries(limit=1)[0]
    assert entry.action == "compliance.export" and entry.details["rows"] == 1 and entry.details["format"] == "csv"


def test_incidents_json(city: dict[str, Any]) -> None:
    rows = json.loads(export("incidents", "json", city["store"], "officer"))
    assert {r["id"] for r in rows} == {"INC-WATER", "INC-POWER"}
    assert next(r for r in rows if r["id"] == "INC-WATER")["status"] == "closed"


def test_evidence_csv_and_json(city: dict[str, Any], assessment: Assessment) -> None:
    rows = json.loads(export("evidence", "json", city["store"], "officer", assessment=assessment))
    mon = next(r for r in rows if r["subject"] == "traffic-cams" and r["control"] == "SL.OPS.MONITORING")
    assert mon["status"] == "fail" and mon["failing"] == ["cam-02"]
    text = export("evidence", "csv", city["store"], "officer", assessment=assessment)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == len(rows) and parsed[0].keys() >= {"control", "subject", "status", "sources"}


def test_export_is_evidence_for_the_open_format_obligation(city: dict[str, Any]) -> None:
    from compliance.catalogue import load_catalogue
    from compliance.engine import assess
    from compliance.evidence import Period, Status
    from tests.compliance.conftest import END, RULES

    export("incidents", "json", city["store"], "officer")  # the store clock is inside the period
    period = Period(END.replace(day=1), END)
    result = assess(city["store"], city["register"], city["records"], load_catalogue(), period, RULES, END)
    assert result.result("city", "D269.38.4").status is Status.PASS


def test_bad_choices(city: dict[str, Any]) -> None:
    with pytest.raises(ComplianceError, match="choose one of"):
        export("users", "json", city["store"], "officer")
    with pytest.raises(ComplianceError, match="choose one of"):
        export("register", "xlsx", city["store"], "officer", register=AssetRegister())
