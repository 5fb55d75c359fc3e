"""The scoreboard: replay benign + attack traffic through the full pipeline and score what was detected.

Each scenario runs on its own store (``<home>/lab-runs/<scenario>.db``) built by
the composition root (:func:`console.runtime.build_runtime`) with the lab
city's register, the rule pack, the playbook library and the anomaly models
the lab trains on its own simulated process (saved, signed, under
``<home>/models`` like any trained model).  Records go through the collector
parsers and the ingest pipeline in time order; simulated time is compressed:
the detection engine's, incident manager's and anomaly listener's clocks read
the time of the event being processed, so a day of telemetry takes seconds and
MTTD -- the first true-positive alert that is part of an incident, minus the
first malicious record -- is measured in simulated seconds.

Ground truth: a record's offset (``labels.source_offset``) is its index in the
replay; an alert is a true positive if one of its events comes from a
malicious record, else a false positive.  A scenario is *detected* when every
expected rule raised a true-positive alert that is part of an incident.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.base import RawRecord, get_parser
from console.runtime import Runtime, build_runtime
from detections.anomaly.lifecycle import model_card, train
from detections.anomaly.storage import save_model, versions
from lab import scada
from lab.city import City, load_city
from lab.scenario_spec import DAY, Scenario, load_scenarios
from lab.telemetry import CHANNELS, Rates, Record, benign, sort_records
from store.base import StoredEventListener
from store.event import Event
from store.models import Alert

#: the OT models the lab trains on a week of its own benign process (seed 1), as docs/anomaly.md describes
LAB_MODELS = ("ot-process", "sensor-integrity")
SHM = Path("/dev/shm")  # noqa: S108 - only as the parent of a private TemporaryDirectory
CHUNK = 500
CHUNK_SPAN = timedelta(minutes=10)


class ScoreboardError(Exception):
    """The scoreboard cannot run; the message says why."""


class SimClock:
    """The simulated time: the time of the record being delivered."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    title: str
    detected: bool
    mttd_seconds: float | None
    expected: tuple[str, ...]
    missed: tuple[str, ...]
    events: int
    malicious_records: int
    alerts: int
    true_positive_alerts: int
    false_positives: int
    incidents: int
    playbooks: tuple[str, ...]
    rules_fired: tuple[str, ...]
    false_positive_rules: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "detected": self.detected,
            "mttd_seconds": self.mttd_seconds,
            "false_positives": self.false_positives,
            "alerts": self.alerts,
            "true_positive_alerts": self.true_positive_alerts,
            "incidents": self.incidents,
            "events": self.events,
            "malicious_records": self.malicious_records,
            "expected": list(self.expected),
            "missed": list(self.missed),
            "rules_fired": list(self.rules_fired),
            "false_positive_rules": list(self.false_positive_rules),
            "playbooks": list(self.playbooks),
        }


@dataclass
class Replay:
    """What one replay stored and raised."""

    runtime: Runtime
    records: list[Record]
    malicious: set[int] = field(default_factory=set)


@contextlib.contextmanager
def lab_home(path: Path | None = None) -> Iterator[Path]:
    """``CITYSOC_HOME`` for the runs: the given directory, else a temporary one removed afterwards."""
    old = os.environ.get("CITYSOC_HOME")
    with contextlib.ExitStack() as stack:
        # throw-away stores go to memory-backed /dev/shm when there is one: the store commits (and fsyncs) the
        # correlation windows on every base-rule match, which on a busy disk dominates a replay's time
        # (TemporaryDirectory makes a private 0700 directory with a random name there, so sharing is no risk)
        shm = str(SHM) if os.access(SHM, os.W_OK) else None
        root = path or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="citysoc-lab-", dir=shm)))
        root.mkdir(parents=True, exist_ok=True)
        os.environ["CITYSOC_HOME"] = str(root)
        try:
            yield root
        finally:
            if old is None:
                os.environ.pop("CITYSOC_HOME", None)
            else:
                os.environ["CITYSOC_HOME"] = old


def ensure_models() -> None:
    """Train and save the lab's OT models under the current home unless a version exists."""
    missing = [name for name in LAB_MODELS if not versions(name)]
    baseline = scada.simulate(7, seed=1) if missing else None
    for name in missing:
        if baseline is not None:
            model = train(name, baseline)
            save_model(model, model_card(model, now=DAY))


class ClockedListener:
    """A stored-event listener seen at simulated time (implements ``store.base.StoredEventListener``).

    Every listener (detection engine, anomaly scorer, indicator alerter) gets one event at a time with the
    clock at that event's time, so an alert and the incident it opens are stamped when their last event arrived.
    """

    def __init__(self, inner: StoredEventListener, clock: SimClock) -> None:
        self.inner = inner
        self.clock = clock

    def on_events_stored(self, events: Sequence[Event]) -> None:
        for event in events:
            self.clock.now = event.timestamp
            self.inner.on_events_stored([event])


def _set_clock(runtime: Runtime, clock: SimClock) -> None:
    runtime.engine.clock = clock
    runtime.incidents.clock = clock
    for listener in runtime.pipeline.listeners:
        if hasattr(listener, "clock"):
            listener.clock = clock  # the anomaly listener stamps its alerts too
    runtime.pipeline.listeners = [ClockedListener(listener, clock) for listener in runtime.pipeline.listeners]


def replay(runtime: Runtime, records: Sequence[Record]) -> None:
    """Deliver records in time order through each channel's collector parser, storing a short window at a time.

    A window is at most :data:`CHUNK` records within :data:`CHUNK_SPAN` of simulated time; its events of every
    channel are stored together, in time order; the listeners see them at simulated time (:class:`ClockedListener`).
    """
    parsers = {channel: get_parser(name) for channel, name in CHANNELS.items()}
    pipeline = runtime.pipeline
    i = 0
    while i < len(records):
        first = records[i].ts
        j = i
        while j < len(records) and j - i < CHUNK and records[j].ts - first <= CHUNK_SPAN:
            j += 1
        events = []
        for k in range(i, j):
            r = records[k]
            raw = RawRecord(r.line, f"lab:{r.channel}", str(k), received=r.ts)
            events.extend(pipeline.parse(raw, parsers[r.channel]))
        pipeline.flush(events)
        i = j


def _is_malicious(runtime: Runtime, alert: Alert, malicious: set[int]) -> bool:
    for event in runtime.store.get_events(list(alert.event_ids)):
        offset = event.get("labels.source_offset")
        if isinstance(offset, str) and offset.isdigit() and int(offset) in malicious:
            return True
    return False


def run_records(name: str, records: list[Record], city: City, home: Path) -> Replay:
    """Replay ``records`` into a fresh store ``<home>/lab-runs/<name>.db``; the caller closes the runtime."""
    db = home / "lab-runs" / f"{name}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    runtime = build_runtime(store_url=f"sqlite:///{db}", register=city.register, name=f"citysoc-lab-{name}")
    clock = SimClock(records[0].ts if records else DAY)
    _set_clock(runtime, clock)
    replay(runtime, records)
    return Replay(runtime, records, {i for i, r in enumerate(records) if r.malicious})


def score(scenario: Scenario, rep: Replay, rule_titles: dict[str, str]) -> ScenarioResult:
    store = rep.runtime.store
    alerts = store.list_alerts(limit=100_000)
    true_alerts = [a for a in alerts if _is_malicious(rep.runtime, a, rep.malicious)]
    false_alerts = [a for a in alerts if a not in true_alerts]
    incidents = {i.id: i for i in store.list_incidents(limit=10_000)}
    hit = {a.rule_id for a in true_alerts if a.incident_id in incidents}
    missed = tuple(r for r in scenario.expected if r not in hit)
    attack_start = min((r.ts for r in rep.records if r.malicious), default=scenario.attack_start)
    # detected when the first true-positive alert joined an incident (alerts are stamped with the simulated clock)
    detecting = [a.created for a in true_alerts if a.incident_id in incidents]
    mttd = round((min(detecting) - attack_start).total_seconds(), 3) if detecting and not missed else None
    runs = store.list_runs(limit=10_000)
    return ScenarioResult(
        scenario=scenario.name,
        title=scenario.title,
        detected=not missed,
        mttd_seconds=mttd,
        expected=scenario.expected,
        missed=missed,
        events=store.count_events(),
        malicious_records=len(rep.malicious),
        alerts=len(alerts),
        true_positive_alerts=len(true_alerts),
        false_positives=len(false_alerts),
        incidents=len(incidents),
        playbooks=tuple(sorted({r.playbook for r in runs})),
        rules_fired=tuple(sorted({rule_titles.get(a.rule_id, a.rule_title) for a in true_alerts})),
        false_positive_rules=tuple(sorted({a.rule_title for a in false_alerts})),
    )


def scenario_records(scenario: Scenario, city: City, seed: int) -> list[Record]:
    """Benign background plus the scenario's labelled attack, in time order (deterministic for a seed)."""
    background = benign(
        city, seed, scenario.start, scenario.hours, scenario.rates(), scenario.sources,
        scada_attacks=scenario.scada_attacks(), scada_label=f"{scenario.name}:process",
    )  # fmt: skip
    return sort_records([*background, *scenario.attack_records(city, seed)])


def run_scenario(scenario: Scenario, seed: int = 7, city: City | None = None) -> ScenarioResult:
    """Run one scenario in the current ``CITYSOC_HOME`` (see :func:`lab_home`)."""
    city = city or load_city()
    ensure_models()
    records = scenario_records(scenario, city, seed)
    rep = run_records(scenario.name, records, city, Path(os.environ["CITYSOC_HOME"]))
    try:
        rules = rep.runtime.rules
        titles = {r.rule_id: r.title for r in rules.compiled} | {str(c.id): c.title for c in rules.correlations}
        return score(scenario, rep, titles)
    finally:
        rep.runtime.close()


def check_expected(scenarios: Sequence[Scenario], runtime_rules: set[str]) -> None:
    """Every expected detection names a rule of the pack or an anomaly model the lab trains."""
    known = runtime_rules | {f"anomaly:{m}" for m in LAB_MODELS}
    bad = [f"{s.path}: expected {e!r} is no rule id of the pack nor a lab anomaly model"
           for s in scenarios for e in s.expected if e not in known]  # fmt: skip
    if bad:
        raise ScoreboardError("\n".join(bad))


def run_scenarios(
    names: Sequence[str] | None = None, seed: int = 7, home: Path | None = None
) -> list[ScenarioResult]:
    """Run the named scenarios (all when ``names`` is None, in name order), each on a fresh store."""
    scenarios = load_scenarios()
    chosen = sorted(scenarios) if names is None else list(names)
    unknown = [n for n in chosen if n not in scenarios]
    if unknown:
        raise ScoreboardError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sorted(scenarios))}")
    city = load_city()
    with lab_home(home):
        from detections.pack import default_rule_paths, load_rules

        pack = load_rules(default_rule_paths())
        ids = {r.rule_id for r in pack.compiled} | {str(c.id) for c in pack.correlations if c.id}
        check_expected([scenarios[n] for n in chosen], ids)
        return [run_scenario(scenarios[n], seed, city) for n in chosen]


@dataclass(frozen=True)
class BenignDay:
    events: int
    alerts: int
    rate: float
    rules: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "false_positive_alerts": self.alerts, "rate": self.rate,
                "rules": list(self.rules)}  # fmt: skip


def benign_day(seed: int = 7, hours: float = 24, rates: Rates | None = None, home: Path | None = None) -> BenignDay:
    """A simulated benign day through the full pipeline: every alert is a false positive."""
    city = load_city()
    with lab_home(home) as root:
        ensure_models()
        records = benign(city, seed, DAY, hours, rates)
        rep = run_records("benign-day", records, city, root)
        try:
            alerts = rep.runtime.store.list_alerts(limit=100_000)
            events = rep.runtime.store.count_events()
        finally:
            rep.runtime.close()
    return BenignDay(events, len(alerts), len(alerts) / events if events else 0.0,
                     tuple(sorted({a.rule_title for a in alerts})))  # fmt: skip


def table(results: Sequence[ScenarioResult]) -> str:
    """The scoreboard as a Markdown table (also what the CLI prints)."""
    lines = [
        "| scenario | detected | MTTD (s) | events (attack records) | alerts (TP) | FP | incidents | playbooks "
        "| detections |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mttd = "–" if r.mttd_seconds is None else f"{r.mttd_seconds:g}"
        missed = "" if not r.missed else f" (missed {', '.join(r.missed)})"
        lines.append(
            f"| {r.scenario} | {'yes' if r.detected else 'NO'}{missed} | {mttd} | {r.events} ({r.malicious_records})"
            f" | {r.alerts} ({r.true_positive_alerts})"
            f" | {r.false_positives} | {r.incidents} | {', '.join(r.playbooks) or '–'} | {'; '.join(r.rules_fired)} |"
        )
    return "\n".join(lines)
