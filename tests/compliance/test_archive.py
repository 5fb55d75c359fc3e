"""Archived reports: manifest, hash chained into the audit log, 10-year retention, tampering detected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from compliance.archive import MANIFEST, find_archive, list_reports, verify
from compliance.catalogue import load_catalogue
from compliance.errors import ArchiveError, ComplianceError
from compliance.service import Context, generate
from tests.compliance.conftest import END, PERIOD, RULES


@pytest.fixture
def archived(city: dict[str, Any], tmp_path: Path) -> tuple[Context, Path, str]:
    ctx = Context(city["store"], city["register"], city["records"], load_catalogue(), RULES)
    root = tmp_path / "reports"
    report = generate(ctx, "system", "en", PERIOD, "officer", subject="traffic-cams", now=END, root=root)
    return ctx, root, report.id


def test_manifest_records_queries_window_counts_inputs_and_retention(archived: tuple[Context, Path, str]) -> None:
    ctx, root, report_id = archived
    manifest = json.loads((root / report_id / MANIFEST).read_text())
    assert manifest["window"] == {"start": "2026-11-01T00:00:00.000000Z", "end": "2026-11-21T00:00:00.000000Z"}
    assert manifest["retention_years"] == 10 and manifest["retain_until"].startswith("2036-11-21")
    assert {"report.html", "report.pdf", "data.json"} == set(manifest["files"])
    assert {"register_rows", "catalogue", "records", "rules"} <= set(manifest["inputs"])
    assert any(q["query"].startswith("events of the assets of traffic-cams") for q in manifest["queries"])
    assert manifest["counts"]["incidents"] == 2
    entry = ctx.store.audit_entries(limit=1)[0]
    assert entry.action == "compliance.report" and entry.object == f"report:{report_id}"
    assert list_reports(root)[0]["id"] == report_id


def test_untouched_report_verifies_by_id_and_by_file(archived: tuple[Context, Path, str], tmp_path: Path) -> None:
    ctx, root, report_id = archived
    assert verify(ctx.store, root, report_id).ok
    copy = tmp_path / "sent-to-committee.pdf"
    copy.write_bytes((root / report_id / "report.pdf").read_bytes())
    result = verify(ctx.store, root, str(copy))
    assert result.ok and result.report_id == report_id


def test_tampered_pdf_is_detected(archived: tuple[Context, Path, str]) -> None:
    ctx, root, report_id = archived
    pdf = root / report_id / "report.pdf"
    content = bytearray(pdf.read_bytes())
    content[len(content) // 2] ^= 0x01  # one flipped bit in the middle of the document
    pdf.write_bytes(bytes(content))
    result = verify(ctx.store, root, report_id)
    assert not result.ok and any("report.pdf" in p and "altered" in p for p in result.problems)


def test_tampered_manifest_is_detected(archived: tuple[Context, Path, str]) -> None:
    ctx, root, report_id = archived
    path = root / report_id / MANIFEST
    manifest = json.loads(path.read_text())
    html = root / report_id / "report.html"
    html.write_text(html.read_text().replace("Fail", "Pass"))
    from compliance.archive import canonical, sha256_file

    manifest["files"]["report.html"] = sha256_file(html)  # a forger updates the manifest too
    path.write_bytes(canonical(manifest))
    result = verify(ctx.store, root, report_id)
    assert not result.ok and result.problems == ["manifest SHA-256 differs from the audit log (manifest altered)"]


def test_altered_copy_matches_no_report(archived: tuple[Context, Path, str], tmp_path: Path) -> None:
    _ctx, root, report_id = archived
    copy = tmp_path / "copy.pdf"
    copy.write_bytes((root / report_id / "report.pdf").read_bytes() + b"%")
    with pytest.raises(ArchiveError, match="matches no archived report"):
        find_archive(root, str(copy))


def test_altered_audit_log_is_detected(archived: tuple[Context, Path, str]) -> None:
    ctx, root, report_id = archived
    with sqlite3.connect(ctx.store.path) as conn:  # type: ignore[attr-defined]
        conn.execute("UPDATE audit SET actor = 'someone-else' WHERE object = ?", (f"report:{report_id}",))
    result = verify(ctx.store, root, report_id)
    assert not result.ok and any(p.startswith("audit chain:") for p in result.problems)


def test_pack_for_one_indicator(city: dict[str, Any], tmp_path: Path) -> None:
    ctx = Context(city["store"], city["register"], city["records"], load_catalogue(), RULES)
    report = generate(ctx, "maturity", "vi", PERIOD, "officer", subject="V.NS.20.01", now=END, root=tmp_path / "r")
    data = json.loads((report.path / "data.json").read_text(encoding="utf-8"))
    assert data["subject"] == "V.NS.20.01" and [r["control"] for r in data["rows"]] == ["V.NS.20.01"]
    with pytest.raises(ComplianceError, match="no indicator"):
        generate(ctx, "maturity", "vi", PERIOD, "officer", subject="X.Y", now=END, root=tmp_path / "r")
