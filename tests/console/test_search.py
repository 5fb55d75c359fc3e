"""Event search page and API: query language, time range, histogram, escaping, exports, dashboards."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from console import charts
from console.services import csv_cell, store_of
from tests.console import HOSTILE, IMG, SCRIPT, logged_in, seed_incident
from tests.console import console_app as make_app
from tests.helpers import T0, event

NOW = T0 + timedelta(minutes=23)  # the last events are at 08:21:40 and 08:21:50


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with make_app(tmp_path, CLOCK=lambda: NOW) as app:
        store = store_of(app)
        store.put_events(
            [event(60 * i, {"source.ip": f"10.0.{i % 2}.5", "event.action": "login failed" if i % 3 else "login",
                            "user.name": "operator", "message": f"attempt {i}"}) for i in range(20)]
            + [event(1300, {"message": HOSTILE, "user.name": HOSTILE, "event.dataset": SCRIPT,
                            "source.ip": "10.9.9.9"}, event_id="evil"),
               event(1310, {"message": "=HYPERLINK(\"http://x\")", "user.name": "@SUM(A1)"}, event_id="formula")]
        )  # fmt: skip
        yield app


def test_search_api_query_histogram_and_paging(app: Flask) -> None:
    client = logged_in(app)
    body = client.get('/api/v1/events?q=source.ip:10.0.1.0/24 and event.action:"login failed"&range=1h').get_json()
    expected = [i for i in range(20) if i % 2 == 1 and i % 3]
    assert body["total"] == len(expected) and len(body["events"]) == len(expected)
    assert [e["message"] for e in body["events"]] == [f"attempt {i}" for i in reversed(expected)]
    assert sum(b["count"] for b in body["histogram"]) == len(expected)
    assert body["interval_seconds"] == 30.0 and body["start"] == "2026-11-21T07:23:00.000000Z"
    page = client.get("/api/v1/events?q=attempt&range=1h&limit=5&offset=5").get_json()
    assert [e["message"] for e in page["events"]] == [f"attempt {i}" for i in (14, 13, 12, 11, 10)]
    assert page["total"] == 20
    window = client.get("/api/v1/events?q=attempt&start=2026-11-21T08:05:00Z&end=2026-11-21T08:07:00Z").get_json()
    assert [e["message"] for e in window["events"]] == ["attempt 6", "attempt 5"]
    bad = client.get("/api/v1/events?q=source.ip:nope")
    assert bad.status_code == 400 and bad.get_json()["error"]["message"].startswith("q: query column 1:")
    assert client.get("/api/v1/events?start=2026-11-22T00:00:00Z&end=2026-11-21T00:00:00Z").status_code == 400
    assert client.get("/api/v1/events?range=2y").status_code == 400


def test_search_page_escapes_event_content_everywhere(app: Flask) -> None:
    client = logged_in(app)
    html = client.get("/events?q=source.ip:10.9.9.9&range=1h").get_data(as_text=True)
    assert SCRIPT not in html and IMG not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<svg class="chart histogram"' in html and "<title>" in html
    # a pivot link from the hostile value: quoted into the query, URL-encoded, escaped
    assert re.search(r'href="/events\?q=user.name:%22%3Cscript%3E', html)
    error = client.get("/events?q=destination.port:" + SCRIPT).get_data(as_text=True)
    assert "Query error:" in error and "is not a valid long value" in error and SCRIPT not in error


def test_histogram_bars_narrow_the_search(app: Flask) -> None:
    client = logged_in(app)
    html = client.get("/events?q=attempt&range=1h").get_data(as_text=True)
    links = re.findall(r'<a href="(/events\?[^"]+)"><rect class="bar"', html)
    assert len(links) == 120  # 30 s bars over the hour
    [bar] = [link for link in links if "start=2026-11-21T08:00:00.000000Z" in link]
    narrowed = client.get(bar.replace("&amp;", "&")).get_data(as_text=True)  # 08:00:00 - 08:00:30
    assert "attempt 0" in narrowed and "attempt 1<" not in narrowed


def test_exports_neutralise_formulas_and_are_audited(app: Flask) -> None:
    client = logged_in(app)
    response = client.get("/events/export.csv?q=&range=1h")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, cells = rows[0], {c for row in rows[1:] for c in row}
    assert header[:2] == ["@timestamp", "event.id"] and header[-1] == "message"
    assert "'=HYPERLINK(\"http://x\")" in cells and "'@SUM(A1)" in cells
    assert not any(c[:1] in "=+-@" for c in cells if c)
    as_json = client.get("/events/export.json?q=user.name:operator&range=1h").get_json()
    assert len(as_json) == 20 and as_json[0]["user"]["name"] == "operator"
    assert [e.action for e in store_of(app).audit_entries()][:2] == ["events.export", "events.export"]


@pytest.mark.parametrize(("value", "expected"), [("=1+1", "'=1+1"), ("+1", "'+1"), ("-2", "'-2"), ("@x", "'@x"),
                                                 ("\tx", "'\tx"), ("plain", "plain"), (None, ""), (5, "5")])
def test_csv_cells(value: object, expected: str) -> None:
    assert csv_cell(value) == expected


def test_charts_escape_labels_and_tooltips() -> None:
    svg = str(charts.bar_chart(SCRIPT, [charts.Bar(IMG, 3, tooltip=SCRIPT, href='/x?a=1&b="2"')]))
    assert SCRIPT not in svg and IMG not in svg and "<title>&lt;script&gt;" in svg
    assert 'href="/x?a=1&amp;b=&#34;2&#34;"' in svg
    hbar = str(charts.hbar_chart("t", [charts.Bar(SCRIPT, 2)]))
    line = str(charts.line_chart("t", [IMG], [(SCRIPT, [1.0])]))
    assert SCRIPT not in hbar + line and IMG not in line
    assert "no data" in str(charts.bar_chart("empty", []))


def test_dashboards_page_live_json_and_chart(app: Flask) -> None:
    store = store_of(app)
    seed_incident(store, HOSTILE)
    client = logged_in(app)
    html = client.get("/dashboards?days=2").get_data(as_text=True)
    assert SCRIPT not in html and IMG not in html
    assert html.count('<svg class="chart') == 4 and 'data-live-url="/api/v1/live"' in html
    assert "source-ok" in html or "source-quiet" in html  # the health map of the datasets seen
    live = client.get("/api/v1/live").get_json()
    assert live["open_incidents"] == 1 and live["events_last_5m"] == 4  # 08:18, 08:19, 08:21:40, 08:21:50
    assert {s["name"] for s in live["sources"]} >= {"camera.platform", "ot.modbus"}
    board = client.get("/api/v1/dashboard?days=2").get_json()
    assert sum(p["created"] for p in board["trend"]) == 1 and board["sla_breached"] == 0
    chart = client.get("/dashboards/chart/incidents.svg?days=2")
    assert chart.mimetype == "image/svg+xml" and chart.get_data(as_text=True).startswith("<svg")
    assert client.get("/dashboards/chart/nosuch.svg").status_code == 404
