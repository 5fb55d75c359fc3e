"""Stream scoring: stored SCADA tag events raise one explained anomaly alert per episode, grouped into incidents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from collectors.parsers.scada_csv import ScadaCsvParser
from console.cli import cli
from detections.anomaly.errors import ModelFileError
from detections.anomaly.lifecycle import model_card, rows_from_events, train, train_from_store
from detections.anomaly.storage import save_model
from detections.anomaly.stream import AnomalyListener, load_stream_models
from detections.incidents import IncidentManager
from lab.scada import STEP, Attack, simulate, to_events, write_csv
from store.registry import open_store
from store.sqlite import SQLiteStore
from tests.collectors.samples import parse_file
from tests.helpers import T0


def test_drift_raises_explained_alert_in_incident(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db")
    baseline = simulate(7, seed=1)
    store.put_events(to_events(baseline))
    model = train_from_store("ot-process", store, end=baseline.times[-1] + STEP)  # the end is exclusive
    assert model.meta["train_rows"] == len(baseline)

    listener = AnomalyListener([model], IncidentManager(store, clock=lambda: T0), clock=lambda: T0)
    live = simulate(3, seed=2, attacks=[Attack("setpoint-drift", 96, 96)], start=baseline.times[-1] + STEP)
    events = to_events(live)
    for start in range(0, len(events), 500):  # batches split snapshots across calls
        listener.on_events_stored(store.put_events(events[start : start + 500]))

    assert listener.alerts, "the drift must raise an alert"
    alert = listener.alerts[0]
    assert alert.source == "anomaly" and alert.rule_id == "anomaly:ot-process"
    assert alert.event_time >= live.times[96]
    assert float(alert.entities["anomaly.score"]) >= 0 and "anomaly.threshold" in alert.entities
    assert "L_T1" in alert.entities["anomaly.explanation"] and "threshold" in alert.description
    assert "setpoint changed" in alert.entities["anomaly.explanation"]
    stored = store.list_alerts()
    assert {a.id for a in stored} == {a.id for a in listener.alerts}
    assert all(a.incident_id for a in stored)
    assert len(store.list_incidents()) == 1  # one process: one incident


def test_rows_from_events_keeps_only_complete_snapshots() -> None:
    data = simulate(1, seed=3).slice(0, 3)
    events = to_events(data)[:-1]  # last snapshot misses one tag
    table = rows_from_events(events)
    assert len(table) == 2 and table.columns == tuple(sorted(data.columns))


def test_stream_loads_only_signed_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path / "home"))
    root = tmp_path / "models"
    assert load_stream_models(root) == []  # nothing trained: the listener stays idle
    model = train("ot-process", simulate(2, seed=1))
    path = save_model(model, model_card(model), root=root)
    assert [m.name for m in load_stream_models(root)] == ["ot-process"]
    (path / "manifest.json").write_text((path / "manifest.json").read_text().replace('"version": 1', '"version": 2'))
    with pytest.raises(ModelFileError, match="signature does not match"):
        load_stream_models(root)


def test_evaluate_over_stored_events_from_the_scada_collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CITYSOC_STORE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("CITYSOC_MODELS", raising=False)
    write_csv(simulate(2, seed=2, attacks=[Attack("replay", 120, 24)]), tmp_path / "historian.csv")
    parsed = parse_file(ScadaCsvParser(), tmp_path / "historian.csv")
    assert not parsed.bad and len(parsed.events) == 192 * 10
    store = open_store()
    store.put_events(parsed.events)
    store.close()
    model = train("sensor-integrity", simulate(5, seed=1))
    save_model(model, model_card(model))
    result = CliRunner().invoke(
        cli, ["models", "evaluate-store", "sensor-integrity", "--label-field", "labels.att_flag"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["points"] == 192 and metrics["attacks_total"] == 1 and metrics["attacks_detected"] == 1
    assert metrics["precision"] > 0.9 and "range_f1" in metrics
