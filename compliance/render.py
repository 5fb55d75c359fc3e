"""Rendering report data (:mod:`compliance.reports`) to HTML (Jinja2, autoescaped) and PDF (reportlab).

The PDF uses a TrueType font that covers Vietnamese (DejaVu Sans by default, Debian package
``fonts-dejavu-core``; ``CITYSOC_PDF_FONT`` names another TTF file).  Every text that reaches the
PDF is escaped first: reportlab paragraphs parse a markup language, and register names or
attestation notes are data, not markup.  Charts are drawn with reportlab's graphics (PDF) and as
inline SVG built by the template (HTML).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import jinja2

from compliance.errors import ComplianceError
from compliance.i18n import Translator

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_NAME = "CitySOCSans"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )


def to_html(data: dict[str, Any], report_id: str) -> str:
    t = Translator(str(data["lang"]))
    template = _environment().get_template("report.html")
    return template.render(d=data, t=t, report_id=report_id)


def font_path() -> Path:
    path = Path(os.environ.get("CITYSOC_PDF_FONT") or DEFAULT_FONT)
    if not path.is_file():
        raise ComplianceError(
            f"PDF font {path} not found: install the Debian package fonts-dejavu-core or set CITYSOC_PDF_FONT "
            "to a TrueType font that covers Vietnamese"
        )
    return path


def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(font_path())))


def _bar_chart(title: str, items: list[tuple[str, float]]) -> Any:
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    drawing = Drawing(240, 160)
    drawing.add(String(0, 148, title, fontName=FONT_NAME, fontSize=9))
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 30, 25, 200, 110
    chart.data = [[float(v) for _, v in items] or [0.0]]
    chart.categoryAxis.categoryNames = [label for label, _ in items] or ["-"]
    chart.categoryAxis.labels.fontName = FONT_NAME
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontName = FONT_NAME
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.bars[0].fillColor = colors.HexColor("#2b6cb0")
    drawing.add(chart)
    return drawing


def to_pdf(data: dict[str, Any], report_id: str) -> bytes:
    """The report as PDF bytes: header, charts, tables of controls (and city sections), integrity note."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    _register_font()
    t = Translator(str(data["lang"]))
    body = ParagraphStyle("body", fontName=FONT_NAME, fontSize=8, leading=10)
    small = ParagraphStyle("small", parent=body, fontSize=7, leading=8.5)
    h1 = ParagraphStyle("h1", parent=body, fontSize=15, leading=19, spaceAfter=6)
    h2 = ParagraphStyle("h2", parent=body, fontSize=11, leading=14, spaceBefore=8, spaceAfter=4)

    def p(text: Any, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(str(text)), style)

    def table(header: list[str], rows: list[list[Any]], widths: list[float] | None = None) -> Table:
        cells = [[p(h, small) for h in header]] + [[p(c, small) for c in row] for row in rows]
        tbl = Table(cells, colWidths=widths, repeatRows=1)
        tbl.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f7")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return tbl

    story: list[Any] = [p(data["title"], h1)]
    meta = [
        [t("report.id"), report_id],
        [t("report.period"), f"{data['period']['start']} – {data['period']['end']}"],
        [t("report.generated"), data["generated"]],
        [t("report.catalogue"), data["catalogue_version"]],
    ]
    if data["kind"] == "system":
        s = data["system"]
        meta += [
            [t("system.id"), s["id"]],
            [t("system.agency"), s["agency"]],
            [t("system.sector"), s["sector"]],
            [t("system.domain"), s["domain"]],
            [t("system.level"), s["level"]],
            [t("system.assets"), ", ".join(s["assets"])],
        ]
    story.append(table([t("report.summary"), ""], meta, [60 * mm, 200 * mm]))
    counts = data["counts"]
    charts = [_bar_chart(t("chart.status"), [(t(f"status.{k}"), v) for k, v in counts.items()])]
    if data["kind"] == "city":
        charts.append(_bar_chart(t("chart.levels"), [(str(b["level"]), b["count"]) for b in data["by_level"]]))
        trend = [(w["week"][5:], w["mttr_min"] or 0.0) for w in data["trend"]]
        if trend:
            charts.append(_bar_chart(t("chart.trend"), trend))
    story += [p(t("report.charts"), h2), Table([charts])]
    if data["kind"] == "maturity":
        story.append(p(data["rule"]))
    if data["kind"] == "city":
        story += [
            p(t("city.by_level"), h2),
            table([t("col.level"), t("col.systems")], [[b["level"], b["count"]] for b in data["by_level"]]),
            p(t("city.coverage"), h2),
            table(
                [t("system.domain"), t("col.registered"), t("col.reporting"), t("col.coverage")],
                [[c["domain"], c["registered"], c["reporting"], f"{c['percent']}%"] for c in data["coverage"]],
            ),
            p(t("report.incidents"), h2),
            p(data["incident_totals"]),
            p(t("city.trend"), h2),
            table(
                [
                    t("col.week"),
                    t("col.count"),
                    f"{t('col.mttd')} ({t('unit.minutes')})",
                    f"{t('col.mttr')} ({t('unit.minutes')})",
                ],
                [[w["week"], w["count"], w["mttd_min"] or "–", w["mttr_min"] or "–"] for w in data["trend"]],
            ),
            p(t("city.drills"), h2),
            table(
                [t("col.incident"), t("col.evidence"), t("col.status")],
                [[r["id"], r["playbook"], r["status"]] for r in data["drills"]] or [[t("report.none"), "", ""]],
            ),
            p(t("city.gaps"), h2),
            table(
                [t("system.id"), t("col.level"), t("col.gaps")],
                [[g["system"], g["level"], ", ".join(g["controls"])] for g in data["gaps"]]
                or [[t("report.none"), "", ""]],
            ),
            p(t("city.controls"), h2),
        ]
    else:
        story.append(p(t("report.results"), h2))
    rows = [
        [
            r["control"],
            r["title"],
            "\n".join(r["sources"]),
            r["evidence"],
            r["status_label"],
            r["finding"],
            f"{r['value']}%" if r["value"] is not None else "",
            ", ".join(r["failing"]),
        ]
        for r in data["rows"]
    ]
    story.append(
        table(
            [
                t("col.control"),
                t("col.title"),
                t("col.source"),
                t("col.evidence"),
                t("col.status"),
                t("col.reason"),
                t("col.value"),
                t("col.failing"),
            ],
            rows,
            [24 * mm, 45 * mm, 55 * mm, 22 * mm, 18 * mm, 60 * mm, 14 * mm, 30 * mm],
        )
    )
    if data["kind"] == "system":
        story.append(p(t("report.incidents"), h2))
        story.append(
            table(
                [t("col.incident"), t("col.severity"), t("col.status"), t("col.mttd"), t("col.mttr")],
                [
                    [i["id"], i["severity"], i["status"], i["mttd_min"] or "–", i["mttr_min"] or "–"]
                    for i in data["incidents"]
                ]
                or [[t("report.none"), "", "", "", ""]],
            )
        )
    story += [Spacer(1, 6 * mm), p(t("report.integrity", id=report_id), small)]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=str(data["title"]),
        author="CitySOC",
        subject=report_id,
    )
    doc.build(story)
    return buf.getvalue()
