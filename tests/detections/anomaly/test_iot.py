"""IoT device behaviour on made-up but realistic MQTT telemetry: 12 sensors, one turns into a scanner."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

from detections.anomaly.forest import export_forest, forest_scores
from detections.anomaly.iot import IoTDeviceModel
from detections.anomaly.metrics import evaluate
from detections.anomaly.stream import AnomalyListener
from detections.incidents import IncidentManager
from store.event import Event, stable_id
from store.sqlite import SQLiteStore
from tests.helpers import T0

BROKER = "10.40.0.5"


def telemetry(days: int, seed: int, start_day: int = 0, compromised: str | None = None) -> list[Event]:
    """Each sensor publishes every 5 minutes (+ jitter) to the broker; ``compromised`` scans from day-hour 10."""
    rng = random.Random(seed)
    out = []
    for d in range(start_day, start_day + days):
        for n in range(12):
            dev = f"aq-{n:03d}"
            for k in range(288):
                ts = T0 + timedelta(days=d, minutes=5 * k, seconds=rng.uniform(0, 20))
                fields = {
                    "iot.device.id": dev,
                    "iot.device.type": "sensor",
                    "source.ip": f"10.40.1.{n + 10}",
                    "destination.ip": BROKER,
                    "destination.port": 8883,
                    "network.transport": "tcp",
                    "network.bytes": int(rng.gauss(420, 25)),
                    "iot.mqtt.topic": f"city/air/{dev}",
                }
                out.append(Event(stable_id("iot", dev, ts.isoformat()), ts, fields))
            if dev == compromised:
                for k in range(400):  # from 10:00 for about 70 minutes: telnet sweep of the camera subnet
                    ts = T0 + timedelta(days=d, hours=10, seconds=10 * k)
                    fields = {
                        "iot.device.id": dev,
                        "iot.device.type": "sensor",
                        "source.ip": f"10.40.1.{n + 10}",
                        "destination.ip": f"10.20.1.{k % 250 + 1}",
                        "destination.port": 23,
                        "network.transport": "tcp",
                        "network.bytes": 120,
                        "event.outcome": "failure",
                    }
                    out.append(Event(stable_id("scan", dev, ts.isoformat()), ts, fields))
    return out


def _malicious(event: Event) -> bool:
    return event.get("destination.port") == 23


def test_exported_forest_scores_like_sklearn() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    forest = IsolationForest(n_estimators=30, max_samples=100, max_features=0.8, random_state=1).fit(x)
    probe = rng.normal(size=(40, 5)) * 3
    np.testing.assert_allclose(forest_scores(export_forest(forest), probe), -forest.score_samples(probe))


def test_scanning_sensor_is_flagged_and_explained() -> None:
    model = IoTDeviceModel().fit_events(telemetry(3, seed=1))
    data = model.bucketize(telemetry(1, seed=2, start_day=3, compromised="aq-007"), _malicious)
    flags = model.flags_for(data)
    assert data.table.labels is not None
    mine = np.asarray([d == "aq-007" for d in data.devices])
    result = evaluate(data.table.labels[mine], flags[mine])  # one device's buckets form its time series
    assert result.attacks_total == 1 and result.points == 96
    assert int(data.table.labels.sum()) == 5  # 10:00-11:10 in 15-minute buckets
    assert result.attacks_detected == 1 and result.mean_detection_delay == 0
    assert result.recall == 1.0
    assert flags[~mine].mean() <= 0.01  # the other sensors stay quiet
    first = int(np.flatnonzero(flags & mine)[0])
    text = " ".join(d.text() for d in model.explain_bucket(data, first))
    assert "aq-007" in text and "new" in text and "tcp/23" in text


def test_benign_day_and_cold_start_device() -> None:
    model = IoTDeviceModel().fit_events([e for e in telemetry(3, seed=1) if e.get("iot.device.id") != "aq-011"])
    data = model.bucketize(telemetry(1, seed=3, start_day=3))
    assert "aq-011" in data.devices  # never seen in training: scored against everyone's baseline
    assert model.flags_for(data).mean() <= 0.01


def test_stream_raises_one_device_alert(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db")
    model = IoTDeviceModel().fit_events(telemetry(3, seed=1))
    listener = AnomalyListener([model], IncidentManager(store, clock=lambda: T0), clock=lambda: T0)
    day = sorted(telemetry(1, seed=2, start_day=3, compromised="aq-007"), key=lambda e: e.timestamp)
    for start in range(0, len(day), 700):
        listener.on_events_stored(day[start : start + 700])
    mine = [a for a in listener.alerts if a.entities.get("iot.device.id") == "aq-007"]
    assert len(mine) == 1  # one episode, one alert
    alert = mine[0]
    assert alert.source == "anomaly" and alert.event_time == T0 + timedelta(days=3, hours=10)
    assert "tcp/23" in alert.entities["anomaly.explanation"]
    assert len(listener.alerts) <= 1 + 2  # the other sensors' day stays (almost) quiet
    assert store.get_alert(alert.id).incident_id is not None
