"""IoT device behaviour: per-device baselines of rate, size, peers, ports/protocols, hours and commands.

Events (MQTT messages, platform telemetry, flows) are counted per device and
time bucket into a behaviour row: message count, bytes, distinct and *new*
peers (never seen from this device in the baseline), distinct and new ports or
protocols, new commands, failed share, and how usual the hour of day is for the
device.  Each device gets a robust baseline (median and MAD per feature); a
device with too little history (cold start) uses the baseline of its device type,
or of all devices.  Robust z-scores feed an IsolationForest shared by all
devices; the score is the forest's anomaly score (about 0.5 normal, towards 1
anomalous); any single feature beyond 6 robust sigmas also flags the bucket
(the forest cannot split on a feature that never varied in the baseline, such
as new peers), and a new peer, port or command is explained by name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import IsolationForest

from detections.anomaly.base import AnomalyModel, Deviation, register_model
from detections.anomaly.errors import DataError
from detections.anomaly.forest import export_forest, forest_scores
from detections.anomaly.tabular import Table
from store.event import Event

FEATURES = (
    "messages",
    "bytes",
    "bytes_per_message",
    "peers",
    "new_peers",
    "ports",
    "new_ports",
    "new_commands",
    "failed_share",
    "hour_rarity",
)
#: Features counted on a log scale (counts and sizes are heavy-tailed).
_LOG = {"messages", "bytes", "bytes_per_message", "peers", "new_peers", "ports", "new_ports", "new_commands"}
#: Robust z-score beyond which one feature alone flags a bucket.
Z_LIMIT = 6.0
#: A device needs this many baseline buckets for its own baseline; fewer: its type's, then everyone's.
MIN_BUCKETS = 12


def default_device(event: Event) -> str | None:
    value = event.get("iot.device.id") or event.get("asset.id")
    return str(value) if value else None


@dataclass(frozen=True)
class Bucketed:
    """Behaviour rows with the device and device type of each row."""

    table: Table
    devices: tuple[str, ...]
    kinds: tuple[str, ...]
    new_items: tuple[tuple[str, ...], ...]


def _peer(event: Event, device: str) -> str | None:
    for name in ("destination.ip", "source.ip", "iot.mqtt.topic"):
        value = event.get(name)
        if value and str(value) != device:
            return str(value)
    return None


def _port(event: Event) -> str | None:
    proto = event.get("network.protocol") or event.get("network.transport")
    port = event.get("destination.port")
    return f"{proto or '?'}/{port}" if port is not None or proto else None


def bucket_events(
    events: Iterable[Event],
    bucket: timedelta,
    known: Mapping[str, Mapping[str, list[str]]],
    device_of: Callable[[Event], str | None] = default_device,
    hours: Mapping[str, list[float]] | None = None,
    label_of: Callable[[Event], bool] | None = None,
) -> Bucketed:
    """Behaviour rows per (device, bucket).  ``known`` holds each device's baseline peers/ports/commands."""
    acc: dict[tuple[str, datetime], dict[str, Any]] = {}
    step = bucket.total_seconds()
    for ev in events:
        device = device_of(ev)
        if device is None:
            continue
        start = datetime.fromtimestamp(ev.timestamp.timestamp() // step * step, tz=timezone.utc)
        a = acc.setdefault(
            (device, start),
            {
                "n": 0,
                "bytes": 0.0,
                "peers": set(),
                "ports": set(),
                "commands": set(),
                "failed": 0,
                "kind": "",
                "bad": 0,
            },
        )
        a["n"] += 1
        a["bytes"] += float(ev.get("network.bytes") or ev.get("source.bytes") or 0)
        a["peers"].add(_peer(ev, device))
        a["ports"].add(_port(ev))
        if ev.get("iot.command"):
            a["commands"].add(str(ev.get("iot.command")))
        a["failed"] += ev.get("event.outcome") == "failure"
        a["kind"] = a["kind"] or str(ev.get("iot.device.type") or "")
        if label_of is not None and label_of(ev):
            a["bad"] += 1
    rows, times, devices, kinds, labels, news = [], [], [], [], [], []
    for (device, start), a in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        base = known.get(device) or known.get(f"type:{a['kind']}") or {}
        peers, ports = a["peers"] - {None}, a["ports"] - {None}
        new_peers = peers - set(base.get("peers", ())) if base else set()
        new_ports = ports - set(base.get("ports", ())) if base else set()
        new_cmds = a["commands"] - set(base.get("commands", ())) if base else set()
        profile = (hours or {}).get(device) or (hours or {}).get(f"type:{a['kind']}") or []
        rarity = 1.0 - profile[start.hour] if profile else 0.0
        rows.append(
            [
                a["n"],
                a["bytes"],
                a["bytes"] / a["n"],
                len(peers),
                len(new_peers),
                len(ports),
                len(new_ports),
                len(new_cmds),
                a["failed"] / a["n"],
                rarity,
            ]
        )
        times.append(start)
        devices.append(device)
        kinds.append(a["kind"])
        labels.append(1 if a["bad"] else 0)
        news.append(
            tuple(
                sorted(
                    [f"peer {p}" for p in new_peers][:3]
                    + [f"port {p}" for p in new_ports][:3]
                    + [f"command {c}" for c in new_cmds][:3]
                )
            )
        )
    if not rows:
        raise DataError("no device events (iot.device.id / asset.id, or the given device field) to bucket")
    values = np.log1p(np.asarray(rows, dtype=float) * [1 if f in _LOG else 0 for f in FEATURES]) + np.asarray(
        rows, dtype=float
    ) * [0 if f in _LOG else 1 for f in FEATURES]
    table = Table(FEATURES, values, tuple(times), np.asarray(labels) if label_of else None, "device events")
    return Bucketed(table, tuple(devices), tuple(kinds), tuple(news))


class IoTDeviceModel(AnomalyModel):
    name = "iot-device"
    domain = "iot"
    description = "Per-device behaviour baseline (rate, size, peers, ports, hours, commands) with an IsolationForest"
    limits = (
        "Needs a baseline with the device's normal duty cycle; a device type's baseline is used for new devices. "
        "Bytes need network.bytes/source.bytes in the events. Not evaluated on real IoT captures (none available)."
    )
    training_window = timedelta(days=14)
    bucket: ClassVar[timedelta] = timedelta(minutes=15)
    trees: ClassVar[int] = 100
    # forest scores are bounded by 1, so a margin above the quantile could never be crossed
    threshold_quantile = 0.999
    threshold_margin = 1.0
    #: Fixed seed: the same baseline gives the same forest (reproducible model cards).
    seed: ClassVar[int] = 7

    def __init__(self, device_of: Callable[[Event], str | None] = default_device) -> None:
        super().__init__()
        self.device_of = device_of

    # events API -----------------------------------------------------------------
    def fit_events(self, events: list[Event]) -> IoTDeviceModel:
        known: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        activity: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(24))
        for ev in events:
            device = self.device_of(ev)
            if device is None:
                continue
            kind = f"type:{ev.get('iot.device.type') or ''}"
            for key in (device, kind, "type:*"):
                known[key]["peers"].add(_peer(ev, device) or "")
                known[key]["ports"].add(_port(ev) or "")
                if ev.get("iot.command"):
                    known[key]["commands"].add(str(ev.get("iot.command")))
                activity[key][ev.timestamp.hour] += 1
        self.meta["known"] = {k: {f: sorted(v - {""}) for f, v in sets.items()} for k, sets in known.items()}
        self.meta["hours"] = {k: list(np.round(v / max(v.max(), 1), 4)) for k, v in activity.items()}
        data = self.bucketize(events)
        self.meta["devices"] = sorted(set(data.devices))
        self.features = FEATURES
        self._fit_baselines(data)
        self.threshold = 0.0
        scores = self.raw_scores_for(data)
        self.threshold = self.default_threshold(scores)
        self.meta.update(
            trained_on=self.meta.get("trained_on") or "device events",
            train_rows=len(data.table),
            train_start=data.table.times[0].isoformat(),
            train_end=data.table.times[-1].isoformat(),
            threshold_from="training-quantile",
        )
        return self

    def bucketize(self, events: Iterable[Event], label_of: Callable[[Event], bool] | None = None) -> Bucketed:
        return bucket_events(
            events, self.bucket, self.meta.get("known", {}), self.device_of, self.meta.get("hours", {}), label_of
        )

    def _fit_baselines(self, data: Bucketed) -> None:
        values = data.table.values
        keys = ["*", *self.meta["devices"]]
        med = np.zeros((len(keys), values.shape[1]))
        mad = np.ones((len(keys), values.shape[1]))
        for n, key in enumerate(keys):
            rows = values if key == "*" else values[[d == key for d in data.devices]]
            if key != "*" and len(rows) < MIN_BUCKETS:
                rows = values  # cold start: everyone's baseline
            med[n] = np.median(rows, axis=0)
            # the MAD floor keeps a feature that never varied from turning any change into infinite sigma
            mad[n] = np.maximum(1.4826 * np.median(np.abs(rows - med[n]), axis=0), 0.25)
        self.params = {"median": med, "mad": mad}
        z = self._z(data)
        forest = IsolationForest(n_estimators=self.trees, max_samples=min(256, len(z)), random_state=self.seed)
        self.params.update(export_forest(forest.fit(z)))

    def _z(self, data: Bucketed) -> np.ndarray:
        index = {d: i + 1 for i, d in enumerate(self.meta["devices"])}
        rows = np.asarray([index.get(d, 0) for d in data.devices])
        return np.asarray((data.table.values - self.params["median"][rows]) / self.params["mad"][rows])

    def raw_scores_for(self, data: Bucketed) -> np.ndarray:
        return forest_scores(self.params, self._z(data))

    def flags_for(self, data: Bucketed) -> np.ndarray:
        return self.scored(data)[1]

    def scored(self, data: Bucketed) -> tuple[np.ndarray, np.ndarray]:
        """Forest scores and flags of each bucket, computed once."""
        scores = self.raw_scores_for(data)
        # a feature that never varied in the baseline (no new peers, ever) cannot be split on by the forest,
        # so the robust z-score rule catches what the forest is blind to
        robust = np.abs(self._z(data)).max(axis=1) > Z_LIMIT
        return scores, np.asarray((scores > self.threshold) | robust)

    def explain_bucket(self, data: Bucketed, index: int) -> list[Deviation]:
        z = self._z(data)[index]
        row = data.table.values[index]
        dev = {d: i + 1 for i, d in enumerate(self.meta["devices"])}.get(data.devices[index], 0)
        med, mad = self.params["median"][dev], self.params["mad"][dev]
        out = []
        for k in np.argsort(-np.abs(z))[:3]:
            name = FEATURES[k]
            value, expected = row[k], med[k]
            if name in _LOG:
                value, expected = math.expm1(value), math.expm1(expected)
            extra = f": {', '.join(data.new_items[index])}" if name.startswith("new_") and data.new_items[index] else ""
            out.append(
                Deviation(
                    f"{data.devices[index]}.{name}",
                    float(value),
                    float(expected),
                    float(med[k]),
                    float(mad[k]),
                    float(z[k]),
                    f"robust z vs the device baseline{extra}",
                )
            )
        return out

    # table API (rows already bucketed; devices unknown, so the everyone baseline is used) ----------
    def select_features(self, table: Table) -> tuple[str, ...]:
        raise DataError(
            f"{table.source}: iot-device trains on device events, not a tag table; "
            "use 'citysoc models train iot-device --from-store' (or IoTDeviceModel.fit_events)"
        )

    def fit_arrays(self, values: np.ndarray) -> None:
        raise DataError("iot-device trains on device events (fit_events / 'citysoc models train --from-store')")

    def raw_scores(self, values: np.ndarray) -> np.ndarray:
        return forest_scores(self.params, (values - self.params["median"][0]) / self.params["mad"][0])

    def explain_row(self, values: np.ndarray, index: int) -> list[Deviation]:
        z = (values[index] - self.params["median"][0]) / self.params["mad"][0]
        return [
            Deviation(
                FEATURES[k],
                float(values[index, k]),
                float(self.params["median"][0][k]),
                float(self.params["median"][0][k]),
                float(self.params["mad"][0][k]),
                float(z[k]),
                "robust z",
            )
            for k in np.argsort(-np.abs(z))
        ]


register_model(IoTDeviceModel)
