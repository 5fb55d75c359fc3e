"""Scoring in the stream: SCADA tags and device events -> model scores -> explained alerts.

:class:`AnomalyListener` implements ``store.base.StoredEventListener``.  It
collects ``ot.tag.*`` events into one snapshot per process and timestamp; when a
snapshot holds every tag a model was trained on, it is scored against the recent
history.  An alert is raised at the start of each anomalous episode (not on every
anomalous step; flags less than ``episode_gap`` apart, 12 h by default, are one
episode, since a moved setpoint shows at every fill cycle) and goes to the same
:class:`IncidentManager` as Sigma alerts.  Device events (``iot.device.id``)
are counted into 15-minute buckets for the ``iot-device`` model; a bucket is
scored once a further whole bucket has passed (grace for late events), and its
alert carries ``iot.device.id`` so it groups with Sigma alerts on that device.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from detections.anomaly.base import MODELS, AnomalyModel
from detections.anomaly.iot import IoTDeviceModel, default_device
from detections.anomaly.storage import load_model, model_dir, versions
from detections.incidents import ENTITY_FIELDS, IncidentManager
from store.event import Event, stable_id
from store.models import Alert, Severity

log = logging.getLogger(__name__)

#: Events referenced by one anomaly alert at most (a bucket may hold thousands).
MAX_ALERT_EVENTS = 200
#: Incomplete snapshots kept waiting for their missing tags; the oldest are dropped beyond this.
MAX_PENDING = 2000


def load_stream_models(root: Path | None = None) -> list[AnomalyModel]:
    """The latest saved, verified version of every trained model; a tampered file raises."""
    models = []
    for name in sorted(MODELS):
        if versions(name, root):
            models.append(load_model(model_dir(name, root=root)))
    return models


class AnomalyListener:
    def __init__(
        self,
        models: Sequence[AnomalyModel],
        incidents: IncidentManager,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        severity: Severity = Severity.HIGH,
        episode_gap: timedelta = timedelta(hours=12),
    ) -> None:
        self.models = [m for m in models if not isinstance(m, IoTDeviceModel)]
        self.device_models = [m for m in models if isinstance(m, IoTDeviceModel)]
        self._buckets: dict[datetime, list[Event]] = defaultdict(list)
        self._watermark: datetime | None = None
        self.incidents = incidents
        self.clock = clock
        self.severity = severity
        self._pending: dict[tuple[str, datetime], dict[str, tuple[float, Event]]] = defaultdict(dict)
        self._history: dict[tuple[str, str], deque[np.ndarray]] = {}
        self.episode_gap = episode_gap
        # last flagged time per (model, process): flags closer than episode_gap belong to one episode
        self._last_flag: dict[tuple[str, str], datetime] = {}
        self._scored: set[tuple[str, datetime, str]] = set()
        self.alerts: list[Alert] = []

    def on_events_stored(self, events: Sequence[Event]) -> None:
        if self.device_models:
            self._device_events(events)
        if not self.models:
            return
        touched: set[tuple[str, datetime]] = set()
        for ev in events:
            name, value = ev.get("ot.tag.name"), ev.get("ot.tag.value")
            if name is None or value is None:
                continue
            key = (str(ev.get("ot.process", "")), ev.timestamp)
            self._pending[key][str(name)] = (float(value), ev)
            touched.add(key)
        for key in sorted(touched, key=lambda k: k[1]):
            self._score_snapshot(key)
        while len(self._pending) > MAX_PENDING:
            # a snapshot that never completes (a tag stopped reporting) must not grow memory without bound
            del self._pending[min(self._pending, key=lambda k: k[1])]

    def _score_snapshot(self, key: tuple[str, datetime]) -> None:
        snap = self._pending[key]
        done = True
        for model in self.models:
            if not all(f in snap for f in model.features):
                done = False
                continue
            hkey = (model.name, key[0])
            if (*key, model.name) in self._scored:
                continue
            self._scored.add((*key, model.name))
            hist = self._history.setdefault(hkey, deque(maxlen=model.history))
            hist.append(np.array([snap[f][0] for f in model.features], dtype=float))
            rows = np.vstack(hist)
            flagged = bool(model.flags(rows)[-1])
            if flagged:
                last = self._last_flag.get(hkey)
                if last is None or key[1] - last > self.episode_gap:
                    self._raise(model, key, rows, [snap[f][1] for f in model.features])
                self._last_flag[hkey] = key[1]
        if done:
            del self._pending[key]

    def _device_events(self, events: Sequence[Event]) -> None:
        """Collect device events per bucket; score a bucket once a whole further bucket has passed."""
        bucket = IoTDeviceModel.bucket
        step = bucket.total_seconds()
        for ev in events:
            if default_device(ev) is None:
                continue
            start = datetime.fromtimestamp(ev.timestamp.timestamp() // step * step, tz=timezone.utc)
            self._buckets[start].append(ev)
            if self._watermark is None or ev.timestamp > self._watermark:
                self._watermark = ev.timestamp
        if self._watermark is None:
            return
        # one bucket of grace for late events; a bucket scored once is not scored again
        for start in sorted(s for s in self._buckets if s + 2 * bucket <= self._watermark):
            for model in self.device_models:
                data = model.bucketize(self._buckets[start])
                scores, flags = model.scored(data)
                for i in np.flatnonzero(flags):
                    device = data.devices[i]
                    hkey = (model.name, f"device:{device}")
                    last = self._last_flag.get(hkey)
                    if last is None or start - last > self.episode_gap:
                        evs = [e for e in self._buckets[start] if default_device(e) == device]
                        explanation = "; ".join(d.text() for d in model.explain_bucket(data, int(i)))
                        self._emit(model, f"device {device}", start, float(scores[i]), explanation, evs)
                    self._last_flag[hkey] = start
            del self._buckets[start]

    def _raise(self, model: AnomalyModel, key: tuple[str, datetime], rows: np.ndarray, events: list[Event]) -> None:
        process, ts = key
        score = float(model.scores(rows)[-1])
        deviations = model.explain(rows, rows.shape[0] - 1)
        explanation = "; ".join(d.text() for d in deviations) or "combined deviation of the process tags"
        self._emit(model, process, ts, score, explanation, events)

    def _emit(
        self, model: AnomalyModel, subject: str, ts: datetime, score: float, explanation: str, events: list[Event]
    ) -> None:
        # a consistency or robust-z check can flag a row whose score is still below the threshold
        verdict = "above" if score > model.threshold else "(rule check) below"
        process = subject
        entities: dict[str, str] = {}
        for ev in events:
            for name in ENTITY_FIELDS:
                value = ev.get(name)
                if value is not None and name not in entities:
                    entities[name] = str(value)
        entities.update(
            {
                "anomaly.model": f"{model.name} v{model.meta.get('version', 'unsaved')}",
                "anomaly.score": f"{score:.6g}",
                "anomaly.threshold": f"{model.threshold:.6g}",
                "anomaly.explanation": explanation,
            }
        )
        if process and model.domain == "ot":
            entities["ot.process"] = process
        alert = Alert(
            id=stable_id("anomaly", model.name, process, ts.isoformat()),
            rule_id=f"anomaly:{model.name}",
            rule_title=f"Anomaly in {process or 'process'}: {model.description}",
            severity=self.severity,
            created=self.clock(),
            event_time=ts,
            event_ids=tuple(ev.id for ev in events[:MAX_ALERT_EVENTS]),  # one noisy bucket: not a huge alert
            entities=entities,
            tags=("anomaly", model.domain),
            source="anomaly",
            description=f"score {score:.4g} {verdict} threshold {model.threshold:.4g}. Deviations: {explanation}",
        )
        self.alerts.append(alert)
        if self.incidents.store.add_alert(alert):
            self.incidents.handle(alert)
