"""A seeded SCADA process simulator for the lab: two tanks, two pumps, a daily demand cycle, attacks.

Each tank is filled by its pump under hysteresis control (pump ON below the low
setpoint, OFF above the high one) and drained by a city demand that follows a
daily cycle with noise; junction pressures follow the tank levels and pump
flows; ``L_T1B`` is a redundant level sensor on tank 1.  Runs are deterministic
for a seed.  Two attacks can be injected, both keeping every tag inside its
normal range:

- ``setpoint-drift``: the high setpoint of pump 1 is nudged up slowly, so tank 1
  is held fuller than the operators set it;
- ``replay``: tank 1's sensors (level, redundant level, junction pressure) report
  the same period of the previous day instead of the live values.

Rows carry a label (1 during an attack); :func:`to_events` turns them into SCADA
tag events (``ot.tag.*``) for the store.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from detections.anomaly.tabular import Table
from store.event import Event, stable_id

STEP = timedelta(minutes=15)
STEPS_PER_DAY = 96
START = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)
TAGS = ("L_T1", "L_T1B", "L_T2", "F_PU1", "S_PU1", "F_PU2", "S_PU2", "P_J1", "P_J2", "D_CITY")
UNITS = {"L": "m", "F": "l/s", "S": "state", "P": "m", "D": "l/s"}
ATTACKS = ("setpoint-drift", "replay")


@dataclass(frozen=True)
class Attack:
    kind: str
    start: int  # step index
    duration: int  # steps

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise ValueError(f"unknown SCADA attack {self.kind!r}; known: {', '.join(ATTACKS)}")
        if self.start < STEPS_PER_DAY and self.kind == "replay":
            raise ValueError("a replay attack needs a previous day to replay: start at step 96 or later")


class Process:
    """The two-tank process, one 15-minute step at a time (the PLC simulator drives it live).

    ``high`` holds the pumps' stop levels (the setpoints an operator -- or an attacker -- writes).
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.level = [3.0, 2.5]
        self.pump = [0, 0]
        self.low, self.high = (2.0, 1.6), [4.0, 3.4]
        self.area, self.capacity = (60.0, 45.0), (100.0, 80.0)
        self.t = 0

    def step(self, high: Sequence[float] | None = None) -> np.ndarray:
        """Advance one step; the row of :data:`TAGS` it reads.  ``high`` overrides the stop levels for this step."""
        rng = self.rng
        hour = (self.t % STEPS_PER_DAY) / 4
        demand = 55 * (1 + 0.45 * np.sin(2 * np.pi * (hour - 7) / 24)) + rng.normal(0, 2.5)
        highs = tuple(high) if high is not None else tuple(self.high)
        level, pump = self.level, self.pump
        flows = []
        for k in range(2):
            if level[k] < self.low[k]:
                pump[k] = 1
            elif level[k] > highs[k]:
                pump[k] = 0
            flow = self.capacity[k] * (1 - 0.08 * level[k] / 6) + rng.normal(0, 0.8) if pump[k] else 0.0
            flows.append(flow)
            share = 0.6 if k == 0 else 0.4
            level[k] = float(np.clip(level[k] + (flow - share * demand) * 0.25 / self.area[k], 0.05, 6.0))
        p1 = 18 + 2.2 * level[0] + rng.normal(0, 0.15)
        p2 = 22 + 1.8 * level[1] + 0.04 * flows[1] + rng.normal(0, 0.15)
        self.t += 1
        return np.array(
            (
                level[0] + rng.normal(0, 0.01),
                level[0] + rng.normal(0, 0.01),
                level[1] + rng.normal(0, 0.01),
                flows[0],
                pump[0],
                flows[1],
                pump[1],
                p1,
                p2,
                demand,
            )
        )


def simulate(days: int, seed: int, attacks: Sequence[Attack] = (), start: datetime = START) -> Table:
    """``days`` of process data at 15-minute steps; labels mark attack steps."""
    process = Process(seed)
    n = days * STEPS_PER_DAY
    out = np.zeros((n, len(TAGS)))
    labels = np.zeros(n, dtype=int)
    for t in range(n):
        hi1 = process.high[0]
        for a in attacks:
            if a.kind == "setpoint-drift" and t >= a.start:
                # the nudge grows slowly and then stays: +0.6 m at the end of the attack window
                hi1 += 0.6 * min((t - a.start) / a.duration, 1.0)
        out[t] = process.step((hi1, process.high[1]))
    for a in attacks:
        stop = min(a.start + a.duration, n)
        # a moved setpoint stays moved: the attack lasts to the end of the run
        labels[a.start : (n if a.kind == "setpoint-drift" else stop)] = 1
        if a.kind == "replay":
            cols = [TAGS.index(c) for c in ("L_T1", "L_T1B", "P_J1")]
            out[a.start : stop, cols] = out[a.start - STEPS_PER_DAY : stop - STEPS_PER_DAY, cols]
    times = tuple(start + i * STEP for i in range(n))
    return Table(TAGS, out, times, labels, f"lab-scada(seed={seed}, days={days})")


def to_events(table: Table, process: str = "ctown-lab-station-1", plc: str = "plc-ctown-1") -> list[Event]:
    """One SCADA tag event per tag and row."""
    events = []
    for i, ts in enumerate(table.times):
        for k, tag in enumerate(table.columns):
            events.append(
                Event(
                    id=stable_id("lab-scada", table.source, tag, ts.isoformat()),
                    timestamp=ts,
                    fields={
                        "event.kind": "metric",
                        "event.category": ("process",),
                        "event.dataset": "scada.historian",
                        "event.module": "lab",
                        "ot.process": process,
                        "ot.plc.id": plc,
                        "ot.tag.name": tag,
                        "ot.tag.value": float(table.values[i, k]),
                        "ot.tag.unit": UNITS[tag[0]],
                    },
                )
            )
    return events


def write_csv(table: Table, path: Path) -> None:
    """BATADAL-like CSV (``DATETIME`` first, ``ATT_FLAG`` last) for ``citysoc models evaluate``."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["DATETIME", *table.columns, "ATT_FLAG"])
        labels = table.labels if table.labels is not None else np.zeros(len(table), dtype=int)
        for ts, row, label in zip(table.times, table.values, labels, strict=True):
            writer.writerow([ts.isoformat(), *(f"{v:.6f}" for v in row), int(label)])
