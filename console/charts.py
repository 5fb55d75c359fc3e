"""Server-side SVG charts for the console: bar charts, time histograms and line charts.

Charts are plain SVG built here, inlined in the page (no chart library, no script:
the Content-Security-Policy forbids inline code and styles, so colours come from
CSS classes in ``console.css``).  Labels and tooltips (``<title>``) are often
attacker-controlled (sector names, datasets, event values): every text goes through
:func:`markupsafe.escape`, and numbers are formatted here, so nothing from the
data is ever markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from markupsafe import Markup, escape

from console.services import Dashboard

WIDTH = 640
HEIGHT = 180
PAD_LEFT = 44
PAD_BOTTOM = 22
PAD_TOP = 8


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    tooltip: str = ""
    href: str | None = None


def _num(value: float) -> str:
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"


def _ticks(maximum: float) -> list[float]:
    """0 and round steps up to the first at or above ``maximum`` (at most six ticks)."""
    if maximum <= 0:
        return [0.0]
    step = 10.0 ** math.floor(math.log10(maximum))
    for mult in (1, 2, 5, 10):
        if maximum / (step * mult) <= 5:
            step *= mult
            break
    return [k * step for k in range(math.ceil(maximum / step - 1e-9) + 1)]


def _svg(title: str, body: list[str], css: str, width: int = WIDTH, height: int = HEIGHT) -> Markup:
    head = (
        f'<svg class="chart {escape(css)}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="none">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every part is escaped or formatted above


def _axis(maximum: float, plot_h: float) -> tuple[list[str], float]:
    ticks = _ticks(maximum)
    top = ticks[-1] if ticks[-1] > 0 else 1.0
    out = []
    for tick in ticks:
        y = PAD_TOP + plot_h - plot_h * tick / top
        out.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_num(tick)}</text>')
    return out, top


def bar_chart(title: str, bars: Sequence[Bar], css: str = "bars", label_every: int = 1) -> Markup:
    """Vertical bars with an axis; each bar has a tooltip and, with ``href``, is a link."""
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    body, top = _axis(max((b.value for b in bars), default=0.0), plot_h)
    if not bars:
        body.append(f'<text class="empty" x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle">no data</text>')
        return _svg(title, body, css)
    slot = (WIDTH - PAD_LEFT) / len(bars)
    for k, bar in enumerate(bars):
        h = plot_h * bar.value / top
        x = PAD_LEFT + k * slot
        tip = bar.tooltip or f"{bar.label}: {_num(bar.value)}"
        rect = (
            f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{PAD_TOP + plot_h - h:.1f}" '
            f'width="{max(slot * 0.8, 0.5):.1f}" height="{max(h, 0):.1f}"><title>{escape(tip)}</title></rect>'
        )
        if bar.href:
            rect = f'<a href="{escape(bar.href)}">{rect}</a>'
        body.append(rect)
        if k % max(label_every, 1) == 0:
            body.append(
                f'<text class="label" x="{x + slot / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{escape(bar.label)}</text>"
            )
    return _svg(title, body, css)


def hbar_chart(title: str, bars: Sequence[Bar], css: str = "hbars") -> Markup:
    """Horizontal bars with their labels (categories: sectors, severities, datasets)."""
    row = 22
    height = max(row * len(bars) + 8, 40)
    label_w = 180
    maximum = max((b.value for b in bars), default=0.0) or 1.0
    body: list[str] = []
    if not bars:
        body.append(f'<text class="empty" x="{WIDTH / 2:.0f}" y="24" text-anchor="middle">no data</text>')
    for k, bar in enumerate(bars):
        y = 4 + k * row
        w = (WIDTH - label_w - 60) * bar.value / maximum
        tip = bar.tooltip or f"{bar.label}: {_num(bar.value)}"
        body.append(
            f'<text class="label" x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(bar.label)}</text>'
        )
        rect = (
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(w, 0.5):.1f}" height="{row - 6}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        if bar.href:
            rect = f'<a href="{escape(bar.href)}">{rect}</a>'
        body.append(rect)
        body.append(f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 15}">{_num(bar.value)}</text>')
    return _svg(title, body, css, height=height)


def line_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
               css: str = "lines", label_every: int = 1) -> Markup:  # fmt: skip
    """One polyline per series (gaps where a value is None), with a point tooltip per value."""
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    values = [v for _, vs in series for v in vs if v is not None]
    body, top = _axis(max(values, default=0.0), plot_h)
    n = max(len(labels), 1)
    slot = (WIDTH - PAD_LEFT) / n
    for index, (name, points) in enumerate(series):
        segment: list[str] = []
        for k, value in enumerate(points):
            if value is None:
                if len(segment) > 1:
                    body.append(f'<polyline class="line s{index}" points="{" ".join(segment)}"/>')
                segment = []
                continue
            x = PAD_LEFT + k * slot + slot / 2
            y = PAD_TOP + plot_h - plot_h * value / top
            segment.append(f"{x:.1f},{y:.1f}")
            label = labels[k] if k < len(labels) else ""
            body.append(
                f'<circle class="point s{index}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(name)} {escape(label)}: {_num(value)}</title></circle>"
            )
        if len(segment) > 1:
            body.append(f'<polyline class="line s{index}" points="{" ".join(segment)}"/>')
    for k, label in enumerate(labels):
        if k % max(label_every, 1) == 0:
            body.append(
                f'<text class="label" x="{PAD_LEFT + k * slot + slot / 2:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for index, (name, _) in enumerate(series):
        body.append(f'<text class="legend s{index}" x="{PAD_LEFT + 8 + index * 160}" y="{PAD_TOP + 12}">'
                    f"{escape(name)}</text>")  # fmt: skip
    return _svg(title, body, css)


def dashboard_charts(b: Dashboard, sector_href: Callable[[str], str | None],
                     severity_href: Callable[[str], str]) -> dict[str, Markup]:  # fmt: skip
    """The dashboard's charts by name (the page inlines them; the live view re-fetches them by name)."""
    fmt = "%m-%d %H:%M" if b.interval < timedelta(days=1) else "%m-%d"
    labels = [p.start.strftime(fmt) for p in b.stats.trend]
    every = max(len(labels) // 6, 1)
    created = [
        Bar(label, p.created, f"{label}: {p.created} created") for label, p in zip(labels, b.stats.trend, strict=True)
    ]
    sectors = [Bar(name, n, href=sector_href(name)) for name, n in b.stats.by_sector]
    mttd = [p.mttd_seconds / 60 if p.mttd_seconds is not None else None for p in b.stats.trend]
    mttr = [p.mttr_seconds / 60 if p.mttr_seconds is not None else None for p in b.stats.trend]
    severity = [Bar(label, n, href=severity_href(label)) for label, n in b.stats.by_severity]
    return {
        "incidents": bar_chart("Incidents created", created, label_every=every),
        "sectors": hbar_chart("Incidents by sector", sectors),
        "times": line_chart("MTTD and time to close (minutes)", labels, [("MTTD", mttd), ("MTTR", mttr)],
                            label_every=every),
        "severity": hbar_chart("Incidents by severity", severity),
    }
