"""Reports in Vietnamese and English, as HTML and PDF (rendered to images to prove the PDF draws)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from compliance.engine import Assessment
from compliance.errors import ComplianceError
from compliance.render import to_html, to_pdf
from compliance.reports import build

TOOLS = ("pdftotext", "pdftoppm")


def _need_poppler() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian package poppler-utils)")


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and pages[0].stat().st_size > 2000  # a rendered page, not an empty image
    assert pages[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, timeout=60)
    return out.stdout.decode("utf-8")


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "vi",
            [
                "Báo cáo bảo đảm an toàn hệ thống thông tin theo cấp độ",
                "Không đạt",
                "Nhật ký ngừng gửi về",
                "Nghị định 85/2016/NĐ-CP",
            ],
        ),
        ("en", ["Security-level report", "Fail", "Logs stopped arriving", "TCVN 11930:2017"]),
    ],
)
def test_system_report_pdf_has_text_in_its_language(
    assessment: Assessment, tmp_path: Path, lang: str, expected: list[str]
) -> None:
    _need_poppler()
    data = build("system", assessment, lang, "traffic-cams")
    text = _pdf_text(to_pdf(data, "RPT-20261121-000000000000"), tmp_path)
    flat = " ".join(text.split())
    for phrase in expected:
        assert phrase in flat, phrase
    assert "cam-02" in flat and "RPT-20261121-000000000000" in flat


def test_city_report_pdf_and_html(assessment: Assessment, tmp_path: Path) -> None:
    _need_poppler()
    data = build("city", assessment, "vi")
    flat = " ".join(_pdf_text(to_pdf(data, "RPT-X"), tmp_path).split())
    assert "Ủy ban nhân dân tỉnh" in flat and "Xu hướng MTTD / MTTR theo tuần" in flat
    html = to_html(build("city", assessment, "en"), "RPT-X")
    assert "Systems by security level" in html and "<svg" in html and "INC-" not in html.split("<body>")[0]
    assert "power-ems" in html  # open gaps name the failing system


def test_maturity_pack_lists_indicators_with_drill_down(assessment: Assessment) -> None:
    data = build("maturity", assessment, "en")
    rows = {r["control"]: r for r in data["rows"]}
    assert {"V.NS.20.01", "L3.N2.PN1.01", "KPI.DEV.CAMERAS", "III.GT.05.03"} <= set(rows)
    assert rows["KPI.DEV.METERS"]["failing"] == ["meter-9"] and rows["KPI.DEV.METERS"]["status"] == "fail"
    assert "(citation not verified against the official text)" in rows["V.NS.20.01"]["sources"]


def test_html_escapes_register_content(assessment: Assessment) -> None:
    data = build("system", assessment, "en", "portal-web")
    data["system"]["agency"] = "<script>alert(1)</script>"
    html = to_html(data, "RPT-X")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_pdf_treats_markup_in_data_as_text(assessment: Assessment, tmp_path: Path) -> None:
    _need_poppler()
    data = build("system", assessment, "en", "portal-web")
    data["system"]["agency"] = "<b>Agency & Co</b>"
    flat = " ".join(_pdf_text(to_pdf(data, "RPT-X"), tmp_path).split())
    assert "<b>Agency & Co</b>" in flat


def test_unknown_kind_and_system(assessment: Assessment) -> None:
    with pytest.raises(ComplianceError, match="not one of"):
        build("weekly", assessment, "en")
    with pytest.raises(ComplianceError, match="no system"):
        build("system", assessment, "en", "nope")
