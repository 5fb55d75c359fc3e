"""``citysoc report``: generate, list, verify (tampering fails with status 1), export, attest, scan."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from console.cli import cli

PERIOD = ["--start", "2026-11-01", "--end", "2026-11-21"]


@pytest.fixture
def home(city: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    path: Path = city["home"]
    city["register"].dump(path / "assets.json")
    monkeypatch.setenv("CITYSOC_HOME", str(path))
    monkeypatch.delenv("CITYSOC_STORE_URL", raising=False)
    monkeypatch.delenv("CITYSOC_ASSETS", raising=False)
    monkeypatch.delenv("CITYSOC_REPORTS", raising=False)
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["report", *args], catch_exceptions=False)


def test_system_report_verify_and_tamper(home: Path) -> None:
    result = run("system", "traffic-cams", *PERIOD, "--lang", "en", "--actor", "officer")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["retain_until"].startswith("2036")
    assert (home / "reports" / report["id"] / "report.pdf").is_file()
    listed = [json.loads(line) for line in run("list").output.splitlines()]
    assert [r["id"] for r in listed] == [report["id"]]
    ok = run("verify", report["id"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True
    html = home / "reports" / report["id"] / "report.html"
    html.write_text(html.read_text(encoding="utf-8").replace("Fail", "Pass"), encoding="utf-8")
    bad = CliRunner().invoke(cli, ["report", "verify", report["id"]])
    assert bad.exit_code == 1
    assert "report.html: SHA-256 differs" in json.loads(bad.output)["problems"][0]


def test_city_and_maturity_reports(home: Path) -> None:
    for kind in ("city", "maturity"):
        result = run(kind, *PERIOD, "--format", "html")
        assert result.exit_code == 0, result.output
        report_dir = home / "reports" / json.loads(result.output)["id"]
        assert (report_dir / "report.html").is_file() and not (report_dir / "report.pdf").exists()


def test_unknown_system_is_a_clear_error(home: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "system", "nope", *PERIOD])
    assert result.exit_code != 0 and "no system 'nope'" in result.output


def test_export_csv_and_attest_and_scan(home: Path, tmp_path: Path) -> None:
    out = run("export", "--what", "register", "--format", "csv")
    assert out.exit_code == 0
    assert {row["id"] for row in csv.DictReader(io.StringIO(out.output))} >= {"cam-01", "meter-9"}
    doc = tmp_path / "policy.pdf"
    doc.write_bytes(b"%PDF-1.4 approved policy")
    attested = run("attest", "SL.M1.POLICY", "water-scada", str(doc), "--actor", "officer")
    assert attested.exit_code == 0, attested.output
    assert len(json.loads(attested.output)["sha256"]) == 64
    wrong = CliRunner().invoke(cli, ["report", "attest", "SL.OPS.MONITORING", "water-scada", str(doc)])
    assert wrong.exit_code != 0 and "not by attestation" in wrong.output
    # the attestation is recorded now (wall clock), so the evidence period must reach past now to count it
    now = datetime.now(timezone.utc)
    scanned = (now - timedelta(hours=1)).isoformat()
    scan = run(
        "scan",
        "traffic-cams",
        "--scanned-at",
        scanned,
        "--critical",
        "0",
        "--high",
        "0",
        "--total",
        "4",
        "--tool",
        "openvas 23",
    )
    assert scan.exit_code == 0, scan.output
    window = ["--start", (now - timedelta(days=2)).isoformat(), "--end", (now + timedelta(days=1)).isoformat()]
    evidence = json.loads(run("export", "--what", "evidence", *window).output)
    by_key = {(r["subject"], r["control"]): r for r in evidence}
    assert by_key[("water-scada", "SL.M1.POLICY")]["status"] == "manual"
    assert by_key[("traffic-cams", "SL.VULN.MANAGEMENT")]["status"] == "pass"
