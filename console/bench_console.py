"""``citysoc bench console``: the analyst console against a large embedded store.

:func:`generate` writes N incidents (with their alert, timeline and entity index)
and M events into a new SQLite store by direct bulk inserts -- the rows the store
itself would write (``events``, ``events_fts``, ``event_terms``, ``incidents`` ...),
built from templates instead of going through the pipeline, so 10 million events
take minutes instead of hours.  The events are valid: a sample of the generated
documents is parsed back through :class:`store.event.Event` (schema validation)
during generation, and the store's own indexes are used unchanged.

:func:`measure` then times the incident queue and the event search through the
Flask test client (the whole request: auth, parsing, store, JSON) and reports
p50/p95 per request kind, next to a reference measured in the same run: the
store's plain first page (``Store.list_incidents``) and the unfiltered newest
events, i.e. what the queue and search cost before filters, counts and histograms.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store import sqlite_events
from store.errors import Conflict
from store.event import Event, format_ts
from store.models import Incident, IncidentStatus, Severity
from store.schema import SCHEMA_VERSION
from store.sqlite import SQLiteStore, incident_row
from store.sqlite_events import index_batch

SECTORS = ("water", "transport", "energy", "health", "education", "public-safety", "environment", "government")
AGENCIES = ("dept-water", "dept-transport", "dept-energy", "dept-health", "dept-education", "city-police",
            "dept-environment", "city-hall")  # fmt: skip
DATASETS = ("linux.auth", "web.access", "suricata.alert", "ot.modbus", "iot.mqtt", "windows.security",
            "firewall.traffic", "scada.historian")  # fmt: skip
ACTIONS = ("login", "login failed", "logout", "connection", "write_single_register", "publish", "denied",
           "process start")  # fmt: skip
USERS = (*(f"user{i:03d}" for i in range(400)), "admin", "root", "operator")
WORDS = ("accepted", "rejected", "timeout", "session", "opened", "closed", "pump", "valve", "sensor",
         "threshold", "exceeded", "firmware", "update", "camera", "stream", "gateway", "heartbeat")  # fmt: skip
BATCH = 50_000
VALIDATE_EVERY = 5_000


@dataclass(frozen=True)
class Timing:
    name: str
    p50_ms: float
    p95_ms: float
    target_ms: float | None
    detail: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.target_ms is None else self.p95_ms <= self.target_ms


def _ip(rng: random.Random, net: int) -> str:
    return f"10.{net}.{rng.randrange(16)}.{rng.randrange(1, 255)}"


Row = tuple[int, str, str, str, str, str]
TermRow = tuple[str, str, int, int]


def _event_row(k: int, ts: datetime, rng: random.Random) -> tuple[Row, str, list[TermRow]]:
    """One event: its ``events`` row, its full-text body and its term entries ``(field, value, epoch, rid)``.

    The rid is k + 1 (the store's first), the id the event's offset in the generated stream,
    as 32 hex digits (the form of ``stable_id``); the document is written from a template
    (every value is plain ASCII without quotes) and sampled back through the schema, and
    its body and terms are checked against what the store itself derives from it.
    """
    dataset = DATASETS[k % len(DATASETS)]
    action = ACTIONS[rng.randrange(len(ACTIONS))]
    src = _ip(rng, rng.randrange(8))
    dst = f"10.{100 + rng.randrange(4)}.0.{rng.randrange(1, 255)}"
    user = USERS[rng.randrange(len(USERS))]
    host = f"host-{rng.randrange(2000):04d}"
    outcome = "failure" if action in ("login failed", "denied") else "success"
    message = f"{action} {user} from {src} to {dst} {WORDS[rng.randrange(len(WORDS))]} {WORDS[k % len(WORDS)]}"
    event_id = f"{k:032x}"
    port = str(1 + rng.randrange(65535))
    stamp = format_ts(ts)
    doc = (
        f'{{"@timestamp": "{stamp}", "citysoc": {{"schema_version": "{SCHEMA_VERSION}"}}, '
        f'"destination": {{"ip": "{dst}", "port": {port}}}, "ecs": {{"version": "8.11.0"}}, '
        f'"event": {{"action": "{action}", "dataset": "{dataset}", "id": "{event_id}", "outcome": "{outcome}"}}, '
        f'"host": {{"name": "{host}"}}, "message": "{message}", "source": {{"ip": "{src}"}}, '
        f'"user": {{"name": "{user}"}}}}'
    )
    rid = k + 1
    epoch = int(ts.timestamp() // 1)
    terms = [
        ("destination.ip", dst, epoch, rid),
        ("event.action", action, epoch, rid),
        ("event.outcome", outcome, epoch, rid),
        ("host.name", host, epoch, rid),
        ("source.ip", src, epoch, rid),
        ("user.name", user, epoch, rid),
    ]
    body = " ".join([dst, port, action, dataset, outcome, host, message, src, user])  # the document's order
    return (rid, event_id, stamp, stamp, dataset, doc), body, terms


def _check(k: int, row: Row, body: str, terms: list[TermRow]) -> None:
    """The generated document passes the schema, and its body and terms are the ones the store derives."""
    event = Event.from_json(row[5])
    if json.loads(event.to_json()) != json.loads(row[5]):
        raise AssertionError(f"generated event {k} does not round-trip: {row[5]}")
    bodies, postings = index_batch([(row[0], event)])
    want_terms = sorted((f, v, epoch) for f, v, epoch in postings.groups)
    if bodies != [(row[0], body)] or want_terms != sorted((f, v, epoch) for f, v, epoch, _ in terms):
        raise AssertionError(f"generated event {k}: body or terms differ from the store's: {bodies} {want_terms}")


def _bulk(conn: sqlite3.Connection) -> None:
    # a bench database only: no durability needed while loading
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    conn.execute("PRAGMA temp_store=FILE")  # the staged terms of 10 M events do not fit in memory


def generate_events(path: Path, count: int, end: datetime, days: float, seed: int = 7,
                    progress: Callable[[str], None] | None = None) -> int:  # fmt: skip
    """Append ``count`` events spread evenly over ``days`` before ``end``; returns how many were validated.

    Loading order matters at this size: events are appended in rid order, the full-text
    index takes segments without merging them while loading (automerge back on at the end), and the
    term entries go to a staging table first and into ``event_terms`` in one sorted pass, as
    posting rows (one per field, value and second, as the store writes them) -- B-tree inserts
    in key order instead of random.
    """
    SQLiteStore(path).close()  # the schema, exactly as the store makes it
    conn = sqlite3.connect(path, isolation_level=None)
    _bulk(conn)
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    span = timedelta(days=days).total_seconds()
    validated = 0
    conn.execute("CREATE TEMP TABLE staged_terms (field TEXT, value TEXT, epoch INTEGER, rid INTEGER)")
    conn.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('automerge', 0)")
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        rows: list[Row] = []
        fts: list[tuple[int, str]] = []
        terms: list[TermRow] = []
        for k in range(first, min(first + BATCH, count)):
            ts = end - timedelta(seconds=span * (1 - k / count))
            row, body, event_terms = _event_row(k, ts, rng)
            if k % VALIDATE_EVERY == 0:
                _check(k, row, body, event_terms)
                validated += 1
            rows.append(row)
            fts.append((row[0], body))
            terms.extend(event_terms)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events(rid, id, ts, ingested, dataset, doc) VALUES (?,?,?,?,?,?)", rows)
        conn.executemany("INSERT INTO events_fts(rowid, body) VALUES (?,?)", fts)
        conn.executemany("INSERT INTO staged_terms VALUES (?,?,?,?)", terms)
        conn.execute("COMMIT")
        done = min(first + BATCH, count)
        if progress is not None and (done % 500_000 == 0 or done == count):
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress(f"  events: {done:,} / {count:,} ({rate:,.0f}/s)")

    def step(what: str, sql: str) -> None:
        began = time.perf_counter()
        conn.execute(sql)
        if progress is not None:
            progress(f"  {what}: {time.perf_counter() - began:.0f} s")

    # offsets from the group's first rid, as store.sqlite_events.Postings writes them
    step("event terms, one sorted pass", "INSERT INTO event_terms(field, value, epoch, rid, more) "
         "SELECT field, value, epoch, min(rid), json_group_array(rid - first) FROM (SELECT s.*, "
         "min(rid) OVER (PARTITION BY field, value, epoch) AS first FROM staged_terms s "
         "ORDER BY field, value, epoch, rid) GROUP BY field, value, epoch ORDER BY field, value, epoch")  # fmt: skip
    conn.execute("DROP TABLE staged_terms")
    # no 'optimize': merging 10 M documents into one b-tree takes longer than the load; automerge does it over time
    conn.execute(  # the store's setting again
        "INSERT INTO events_fts(events_fts, rank) VALUES ('automerge', ?)", (sqlite_events.FTS_AUTOMERGE,)
    )
    conn.close()
    return validated


def generate_incidents(path: Path, count: int, end: datetime, days: float, seed: int = 11) -> None:
    """``count`` incidents, each with one alert, its timeline and its entity index rows."""
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    _bulk(conn)
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    span = timedelta(days=days).total_seconds()
    statuses = list(IncidentStatus)
    for first in range(0, count, BATCH):
        incidents: list[tuple[Any, ...]] = []
        alerts: list[tuple[Any, ...]] = []
        timeline: list[tuple[Any, ...]] = []
        terms: list[tuple[str, str, str]] = []
        for k in range(first, min(first + BATCH, count)):
            created = end - timedelta(seconds=span * (1 - k / count))
            sector = SECTORS[rng.randrange(len(SECTORS))]
            agency = AGENCIES[SECTORS.index(sector)]
            src = _ip(rng, rng.randrange(8))
            severity = Severity(1 + rng.randrange(5))
            status = statuses[rng.randrange(len(statuses))] if created < end - timedelta(days=1) else IncidentStatus.NEW
            entities = {"source.ip": (src,), "asset.agency": (agency,), "asset.sector": (sector,),
                        "host.name": (f"host-{rng.randrange(2000):04d}",)}  # fmt: skip
            incident_id = f"INC-B{k:011d}"
            event_time = created - timedelta(seconds=5 + rng.randrange(600))
            incidents.append(incident_row(Incident(
                id=incident_id, title=f"Brute force against {sector} portal ({src})", severity=severity,
                status=status, created=created, updated=created, first_event_time=event_time,
                last_event_time=event_time, group_key=f"source.ip={src}", entities=entities, tags=("attack.t1110",),
                alert_count=1, mttd_seconds=(created - event_time).total_seconds(),
                assignee=USERS[k % 40] if status is not IncidentStatus.NEW else None,
            )))  # fmt: skip
            alert_id = f"ALR-B{k:011d}"
            alerts.append((alert_id, "bench-brute-force", "Brute force", int(severity), format_ts(created),
                           format_ts(event_time), "[]", json.dumps({"source.ip": src, "asset.agency": agency,
                                                                     "asset.sector": sector}),
                           '["attack.t1110"]', "sigma", "", incident_id))  # fmt: skip
            timeline.append((incident_id, 1, format_ts(created), "created", "detections", "{}"))
            timeline.append((incident_id, 2, format_ts(created), "alert", "detections",
                             json.dumps({"alert_id": alert_id})))  # fmt: skip
            if status is not IncidentStatus.NEW:
                closed_at = created + timedelta(minutes=10 + rng.randrange(2000))
                timeline.append((incident_id, 3, format_ts(closed_at), "status", "bench",
                                 json.dumps({"value": status.value})))  # fmt: skip
            for key, values in entities.items():
                terms.extend((key, value, incident_id) for value in values)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", incidents)
        conn.executemany(  # named columns: the table has later columns (group_by) with defaults
            "INSERT INTO alerts (id, rule_id, rule_title, severity, created, event_time, event_ids, entities, tags,"
            " source, description, incident_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", alerts)
        conn.executemany("INSERT INTO incident_timeline VALUES (?,?,?,?,?,?)", timeline)
        conn.executemany("INSERT OR IGNORE INTO incident_terms VALUES (?,?,?)", terms)
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def _time(call: Callable[[], Any], repeat: int) -> tuple[float, float]:
    call()  # warm the page cache and the statement cache
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return _percentiles(samples)


def measure(path: Path, now: datetime, repeat: int = 20, list_target_ms: float = 300,
            search_target_ms: float = 1000) -> list[Timing]:  # fmt: skip
    """p50/p95 of the queue and search requests through the Flask test client, and the references."""
    from console.app import create_app
    from console.auth import create_user
    from console.services import store_of

    app = create_app({"STORE_URL": f"sqlite:///{path}", "SECRET_KEY": "b" * 64, "TESTING": True,
                      "CLOCK": lambda: now})  # fmt: skip
    store = store_of(app)
    try:
        with contextlib.suppress(Conflict):  # a second run on the same database has the user
            create_user(store, "bench", "bench password 1234", ("analyst",))
        client = app.test_client()
        login = client.get("/login")
        token = _csrf(login.get_data(as_text=True))
        client.post("/login", data={"username": "bench", "password": "bench password 1234", "csrf_token": token})
        if client.get("/api/v1/me").status_code != 200:
            raise RuntimeError("the bench user could not log in (MFA or a changed login flow?)")

        def get(url: str) -> Callable[[], Any]:
            def call() -> Any:
                response = client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {url}: {response.status_code} {response.get_data(as_text=True)[:300]}")
                return response.get_json()

            return call

        sample_ip = _sample(path, "source.ip")
        requests = [
            ("incident list, first page", "/api/v1/incidents", list_target_ms),
            ("incident list, filtered (status, severity, sector, SLA)",
             "/api/v1/incidents?status=new&severity=high&sector=water&sla=breached", list_target_ms),
            ("incident list, text search", "/api/v1/incidents?q=transport&sort=-severity", list_target_ms),
            ("incident queue page (HTML)", "/incidents", list_target_ms),
            (f"event search, field query source.ip:{sample_ip} (30 d, histogram)",
             f"/api/v1/events?q=source.ip:{sample_ip}&range=30d", search_target_ms),
            ("event search, network and action (24 h, histogram)",
             '/api/v1/events?q=source.ip:10.3.0.0/16 and event.action:"login failed"&range=24h', search_target_ms),
            ("event search, free text (24 h, histogram)", "/api/v1/events?q=firmware heartbeat&range=24h",
             search_target_ms),
            ("event search page (HTML, 24 h)", "/events?q=user.name:admin", search_target_ms),
        ]  # fmt: skip
        out = []
        for name, url, target in requests:
            body = get(url)()
            total = body.get("total") if isinstance(body, dict) else None
            p50, p95 = _time(get(url), repeat)
            out.append(Timing(name, p50, p95, target, f"total {total:,}" if isinstance(total, int) else ""))
        p50, p95 = _time(lambda: store.list_incidents(limit=50), repeat)
        out.append(Timing("reference: Store.list_incidents first page (no filter, no count)", p50, p95, None))
        p50, p95 = _time(lambda: store.search_events(limit=100), repeat)
        out.append(Timing("reference: Store.search_events newest 100 (no query, no histogram)", p50, p95, None))
        return out
    finally:
        store.close()


def _csrf(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def _sample(path: Path, name: str) -> str:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM event_terms WHERE field=? LIMIT 1 OFFSET 1000", (name,)).fetchone()
        if row is None:
            row = conn.execute("SELECT value FROM event_terms WHERE field=? LIMIT 1", (name,)).fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else "10.0.0.1"


def run(path: Path, incidents: int, events: int, repeat: int, print_to: Callable[[str], None],
        reuse: bool = False) -> list[Timing]:  # fmt: skip
    """Generate (unless ``reuse`` and the file exists), then measure; prints as it goes."""
    now = datetime.now(UTC).replace(microsecond=0)
    if reuse and path.exists():
        conn = sqlite3.connect(path)
        last = conn.execute("SELECT max(ts) FROM events").fetchone()[0]
        conn.close()
        if last:
            now = datetime.fromisoformat(last.replace("Z", "+00:00")) + timedelta(seconds=1)
        print_to(f"reusing {path} (clock set to {format_ts(now)})")
    else:
        if path.exists():
            raise FileExistsError(f"{path} exists: remove it or pass --reuse")
        started = time.perf_counter()
        generate_incidents(path, incidents, now, days=90)
        print_to(f"generated {incidents:,} incidents in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        validated = generate_events(path, events, now, days=30, progress=print_to)
        print_to(f"generated {events:,} events in {time.perf_counter() - started:.1f} s "
                 f"({validated:,} sampled documents validated against the schema)")  # fmt: skip
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA analysis_limit=2000")  # sampled statistics: a full ANALYZE of 10 M events takes long
        conn.execute("ANALYZE")
        conn.close()
    print_to(f"database: {path.stat().st_size / 2**30:.2f} GiB")
    timings = measure(path, now, repeat)
    width = max(len(t.name) for t in timings)
    print_to(f"{'request':<{width}} {'p50 ms':>8} {'p95 ms':>8} {'target':>8}  result")
    for t in timings:
        target = f"{t.target_ms:.0f}" if t.target_ms is not None else "-"
        verdict = "" if t.met is None else ("met" if t.met else "NOT MET")
        print_to(f"{t.name:<{width}} {t.p50_ms:>8.1f} {t.p95_ms:>8.1f} {target:>8}  {verdict} {t.detail}")
    return timings


def iter_lines(timings: list[Timing]) -> Iterator[str]:
    """Markdown table rows of the timings (for docs/performance.md)."""
    for t in timings:
        target = f"{t.target_ms:.0f}" if t.target_ms is not None else "–"
        yield f"| {t.name} | {t.p50_ms:.1f} | {t.p95_ms:.1f} | {target} | {t.detail} |"
