"""Training, evaluation, drift reports and model cards: the lifecycle around a model.

A model is trained on a baseline period (from the store or a CSV), evaluated on
labelled data, saved as a new signed version with its model card (data used,
metrics, limits: the technical part of the Decree's AI impact assessment), and
retrained on demand or on schedule (``citysoc models train`` from cron).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from detections.anomaly.base import AnomalyModel, get_model
from detections.anomaly.errors import DataError
from detections.anomaly.metrics import evaluate
from detections.anomaly.tabular import Table
from store.base import Store
from store.event import Event


def train(name: str, data: Table, tune: Table | None = None) -> AnomalyModel:
    return get_model(name)().fit(data, tune)


def evaluate_model(model: AnomalyModel, test: Table) -> dict[str, Any]:
    """Metrics of a trained model on labelled ``test`` rows."""
    if test.labels is None:
        raise DataError(f"{test.source}: evaluation needs a label column")
    flags = model.flags(test.select(model.features))
    return evaluate(test.labels, flags).as_dict() | {
        "model": model.name,
        "threshold": round(model.threshold, 6),
        "test": test.source,
        "delay_unit": "rows",
    }


def rows_from_events(
    events: list[Event], process: str | None = None, label_field: str | None = None, attack_value: str = "1"
) -> Table:
    """SCADA tag events (``ot.tag.name``/``ot.tag.value``) pivoted into one row per timestamp.

    Only timestamps where every tag seen in the period reported are kept, so a
    row is a full snapshot of the process.  With ``label_field`` (e.g.
    ``labels.att_flag`` from the SCADA CSV collector) a row is an attack row when
    any of its events carries ``attack_value`` there.
    """
    snaps: dict[datetime, dict[str, float]] = defaultdict(dict)
    attack: set[datetime] = set()
    for ev in events:
        name, value = ev.get("ot.tag.name"), ev.get("ot.tag.value")
        if name is None or value is None or (process is not None and ev.get("ot.process") != process):
            continue
        snaps[ev.timestamp][str(name)] = float(value)
        if label_field is not None and str(ev.get(label_field, "")).strip() == attack_value:
            attack.add(ev.timestamp)
    columns = sorted({t for snap in snaps.values() for t in snap})
    if not columns:
        raise DataError(
            f"no SCADA tag events (ot.tag.name/ot.tag.value){f' for process {process!r}' if process else ''}"
        )
    times = sorted(t for t, snap in snaps.items() if len(snap) == len(columns))
    values = np.array([[snaps[t][c] for c in columns] for t in times], dtype=float).reshape(-1, len(columns))
    labels = np.asarray([1 if t in attack else 0 for t in times], dtype=int) if label_field else None
    return Table(tuple(columns), values, tuple(times), labels, f"store events{f' of {process}' if process else ''}")


def evaluate_stored(
    model: AnomalyModel,
    store: Store,
    start: datetime | None,
    end: datetime | None,
    label_field: str,
    process: str | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` over the store's labelled SCADA tag events between ``start`` and ``end``."""
    table = rows_from_events(list(store.iter_events(start, end)), process, label_field)
    assert table.labels is not None
    if not table.labels.any():
        raise DataError(f"no stored event carries {label_field}=1 in the period; nothing to evaluate against")
    return evaluate_model(model, table)


def train_from_store(name: str, store: Store, end: datetime, process: str | None = None) -> AnomalyModel:
    """Train ``name`` on the store's events in its declared training window ending at ``end``."""
    cls = get_model(name)
    start = end - cls.training_window
    table = rows_from_events(list(store.iter_events(start, end)), process)
    return cls().fit(table)


def drift_report(model: AnomalyModel, recent: Table) -> dict[str, Any]:
    """How far recent data has moved from the training baseline: per-feature mean shift and alert rate."""
    rows = recent.select(model.features)
    names, values = list(model.features), rows
    mask = model.params.get("continuous")
    if mask is not None:  # the process model standardises only its continuous tags
        names = [f for f, m in zip(model.features, mask, strict=True) if m > 0]
        values = rows[:, mask > 0]
    mean = model.params.get("mean")
    std = model.params.get("std")
    shifts: dict[str, float] = {}
    if mean is not None and std is not None and mean.size == values.shape[1]:
        shift = (values.mean(axis=0) - mean) / np.where(std > 0, std, 1.0)
        shifts = {f: round(float(s), 3) for f, s in sorted(zip(names, shift, strict=True), key=lambda p: -abs(p[1]))}
    rate = float(model.flags(rows).mean())
    return {
        "model": model.name,
        "rows": len(recent),
        "alert_rate": round(rate, 4),
        "mean_shift_sigmas": dict(list(shifts.items())[:10]),
        "retrain_advised": rate > 0.05 or any(abs(s) > 1.0 for s in shifts.values()),
    }


def model_card(model: AnomalyModel, metrics: dict[str, Any] | None = None, now: datetime | None = None) -> str:
    """A Markdown model card: purpose, data used, threshold, metrics and limits."""
    meta = model.meta
    lines = [
        f"# Model card: {model.name}",
        "",
        f"- Purpose: {model.description}",
        f"- Domain: {model.domain}; model version {model.version}",
        f"- Written: {(now.isoformat() if now else 'at training time')}",
        f"- Training data: {meta.get('trained_on')} ({meta.get('train_rows')} rows, "
        f"{meta.get('train_start')} to {meta.get('train_end')}); "
        f"baseline window {model.training_window / timedelta(days=1):g} days",
        f"- Threshold: {model.threshold:.6g} ({meta.get('threshold_from')}"
        f"{', tuned on ' + str(meta.get('tuned_on')) if meta.get('tuned_on') else ''})",
        f"- Features ({len(model.features)}): {', '.join(model.features)}",
        "- Personal data: none (process values and device telemetry only)",
        "",
        "## Metrics",
        "",
    ]
    if metrics:
        lines += [f"- {k}: {v}" for k, v in metrics.items()]
    else:
        lines.append("- not evaluated on labelled data")
    lines += ["", "## Limits", "", model.limits, ""]
    return "\n".join(lines)
