"""The lab SCADA simulator: deterministic, and its two in-range attacks are detected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detections.anomaly.base import AnomalyModel
from detections.anomaly.lifecycle import evaluate_model, train
from detections.anomaly.tabular import read_csv
from lab.scada import Attack, simulate, to_events, write_csv

#: Stated false-positive rate on benign lab days (share of 15-minute steps flagged).
MAX_FPR = 0.01


@pytest.fixture(scope="module")
def models() -> dict[str, AnomalyModel]:
    baseline = simulate(7, seed=1)
    return {name: train(name, baseline) for name in ("ot-process", "sensor-integrity", "ot-3sigma")}


def test_same_seed_same_data() -> None:
    a, b = simulate(1, seed=3), simulate(1, seed=3)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, simulate(1, seed=4).values)


def test_attacks_stay_within_normal_range() -> None:
    normal = simulate(3, seed=2)
    attacked = simulate(3, seed=2, attacks=[Attack("setpoint-drift", 96, 96)])
    level = normal.columns.index("L_T1")
    assert attacked.values[:, level].max() < 6.0  # tank height: no level alarm
    assert attacked.values[:, level].min() >= normal.values[:, level].min() - 0.1


def test_benign_days_below_stated_false_positive_rate(models: dict[str, AnomalyModel]) -> None:
    benign = simulate(3, seed=11)
    for name in ("ot-process", "sensor-integrity"):
        assert evaluate_model(models[name], benign)["false_positive_rate"] <= MAX_FPR, name


def test_slow_setpoint_drift_is_detected(models: dict[str, AnomalyModel]) -> None:
    attacked = simulate(3, seed=2, attacks=[Attack("setpoint-drift", 96, 96)])
    ours = evaluate_model(models["ot-process"], attacked)
    baseline = evaluate_model(models["ot-3sigma"], attacked)
    assert ours["attacks_detected"] == 1
    assert ours["precision"] > 0.9
    assert baseline["attacks_detected"] == 0  # within range: the per-tag 3-sigma rule misses it


def test_sensor_replay_is_detected(models: dict[str, AnomalyModel]) -> None:
    attacked = simulate(3, seed=2, attacks=[Attack("replay", 120, 24)])
    ours = evaluate_model(models["sensor-integrity"], attacked)
    assert ours["attacks_detected"] == 1 and ours["mean_detection_delay"] is not None
    assert ours["mean_detection_delay"] <= 1
    assert evaluate_model(models["ot-3sigma"], attacked)["attacks_detected"] == 0


def test_csv_and_events(tmp_path: Path) -> None:
    data = simulate(1, seed=3, attacks=[Attack("setpoint-drift", 40, 20)])
    write_csv(data, tmp_path / "lab.csv")
    back = read_csv(tmp_path / "lab.csv", "ATT_FLAG")
    assert back.columns == data.columns and int(back.labels.sum()) == int(data.labels.sum())  # type: ignore[union-attr]
    events = to_events(data.slice(0, 2))
    assert len(events) == 2 * len(data.columns)
    assert {e.get("ot.tag.name") for e in events} == set(data.columns)
