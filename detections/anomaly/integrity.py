"""Sensor integrity: stuck values, replayed sequences, impossible rates of change, redundant-sensor disagreement.

Falsified sensors often keep each value plausible: a frozen reading, yesterday's
sequence played back, or a jump no physical process could make.  These checks
learn per-tag limits from the baseline (largest step, longest run of identical
readings, pairs of tags that move together) and count violations per row.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detections.anomaly.base import AnomalyModel, Deviation, numeric_split, register_model
from detections.anomaly.metrics import ranges
from detections.anomaly.tabular import Table


def run_lengths(col: np.ndarray) -> np.ndarray:
    """For each row, how many consecutive rows up to it hold exactly the same value."""
    if col.size == 0:
        return np.zeros(0, dtype=int)
    idx = np.arange(col.size)
    change = np.concatenate(([True], col[1:] != col[:-1]))
    run_start = np.maximum.accumulate(np.where(change, idx, 0))
    return np.asarray(idx - run_start + 1)


def replayed(col: np.ndarray, window: int) -> np.ndarray:
    """True where the ``window`` values ending at a row repeat an earlier non-constant sequence exactly."""
    out = np.zeros(col.size, dtype=bool)
    if col.size < window:
        return out
    seqs = np.round(np.lib.stride_tricks.sliding_window_view(col, window), 9)
    _, first, inverse = np.unique(seqs, axis=0, return_index=True, return_inverse=True)
    repeat = first[inverse.ravel()] < np.arange(len(seqs))
    repeat &= np.ptp(seqs, axis=1) > 0  # a flat sequence is the stuck check's business
    out[window - 1 :] = repeat
    return out


class SensorIntegrityModel(AnomalyModel):
    name = "sensor-integrity"
    domain = "ot"
    description = "Per-tag stuck, replay and rate-of-change checks plus disagreement between redundant tags"
    limits = (
        "Replay is found only within the scorer's history (400 rows). Limits assume the scored data has the "
        "resolution of the baseline: give labelled tuning data from the same historian (--tune) to recalibrate. "
        "A tag that was frozen during training is not checked for stuck values."
    )
    smoothing = 1
    history = 400
    #: Sequence lengths tried for the replay check, shortest first (chance repeats vanish as they grow).
    replay_windows: ClassVar[tuple[int, ...]] = (6, 12, 24, 48)
    rate_margin: ClassVar[float] = 1.5
    redundancy_correlation: ClassVar[float] = 0.98

    def select_features(self, table: Table) -> tuple[str, ...]:
        cont, _ = numeric_split(table)
        values = table.select(cont)
        return tuple(c for c, s in zip(cont, values.std(axis=0), strict=True) if s > 1e-9)

    def fit_arrays(self, values: np.ndarray) -> None:
        steps = np.abs(np.diff(values, axis=0)).max(axis=0)
        runs = np.array([run_lengths(values[:, k]).max() for k in range(values.shape[1])], dtype=float)
        corr = np.corrcoef(values, rowvar=False)
        pairs = []
        for a in range(values.shape[1]):
            for b in range(a + 1, values.shape[1]):
                if corr[a, b] >= self.redundancy_correlation:
                    slope, icpt = np.polyfit(values[:, b], values[:, a], 1)
                    resid = values[:, a] - (slope * values[:, b] + icpt)
                    pairs.append((a, b, slope, icpt, max(np.abs(resid).max(), 1e-6)))
        self.params = {
            "replay_window": np.asarray([self._replay_window([values[:, k]]) for k in range(values.shape[1])], float),
            "max_step": steps * self.rate_margin,
            "max_run": np.maximum(runs * 2, 4),
            "pairs": np.asarray(pairs, dtype=float).reshape(-1, 5),
            "mean": values.mean(axis=0),
            "std": values.std(axis=0),
        }

    def default_threshold(self, train_scores: np.ndarray) -> float:
        return 0.5  # any single violated check

    def tune_threshold(self, tune: Table) -> float:
        """Calibrate the stuck and replay limits on the tuning data's normal stretches, then keep 0.5.

        A historian that rounds values (BATADAL's dataset04: two decimals) repeats values and
        short sequences in normal operation; limits learned at full precision would flag them all.
        """
        assert tune.labels is not None
        values = tune.select(self.features)
        stretches = [values[a:b] for a, b in ranges(tune.labels == 0) if b - a > 1]
        for k in range(values.shape[1]):
            cols = [s[:, k] for s in stretches]
            longest = max((run_lengths(c).max() for c in cols), default=1)
            self.params["max_run"][k] = max(self.params["max_run"][k], 2 * longest)
            window = self._replay_window(cols)
            current = self.params["replay_window"][k]
            self.params["replay_window"][k] = 0 if 0 in (window, current) else max(window, current)
        return 0.5

    def _replay_window(self, cols: list[np.ndarray]) -> int:
        """The shortest sequence length that never repeats in normal data (0: replay not checkable)."""
        for window in self.replay_windows:
            if not any(replayed(c, window).any() for c in cols):
                return window
        return 0

    def checks(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """Per check, a rows x features (or pairs) boolean matrix of violations."""
        rate = np.zeros(values.shape, dtype=bool)
        rate[1:] = np.abs(np.diff(values, axis=0)) > self.params["max_step"]
        stuck = np.column_stack([run_lengths(values[:, k]) for k in range(values.shape[1])]) > self.params["max_run"]
        windows = self.params["replay_window"].astype(int)
        replay = np.column_stack(
            [replayed(values[:, k], w) if w else np.zeros(len(values), bool) for k, w in enumerate(windows)]
        )
        pairs = self.params["pairs"]
        disagree = np.zeros((values.shape[0], len(pairs)), dtype=bool)
        for n, (a, b, slope, icpt, tol) in enumerate(pairs):
            resid = values[:, int(a)] - (slope * values[:, int(b)] + icpt)
            disagree[:, n] = np.abs(resid) > 2 * tol
        return {"rate": rate, "stuck": stuck, "replay": replay, "disagree": disagree}

    def raw_scores(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(sum(m.sum(axis=1) for m in self.checks(values).values()), dtype=float)

    def explain_row(self, values: np.ndarray, index: int) -> list[Deviation]:
        found = self.checks(values[: index + 1])
        mean, std = self.params["mean"], self.params["std"]
        out = []

        def dev(k: int | np.integer, expected: float, reason: str) -> Deviation:
            value = float(values[index, k])
            return Deviation(
                self.features[k],
                value,
                expected,
                float(mean[k]),
                float(std[k]),
                float((value - mean[k]) / std[k]) if std[k] else 0.0,
                reason,
            )

        for k in np.flatnonzero(found["rate"][index]):
            step = values[index, k] - values[index - 1, k]
            out.append(
                dev(
                    k,
                    float(values[index - 1, k]),
                    f"impossible rate of change {step:+.4g} per step (limit {self.params['max_step'][k]:.4g})",
                )
            )
        for k in np.flatnonzero(found["stuck"][index]):
            out.append(
                dev(k, float(mean[k]), f"stuck: same value for more than {int(self.params['max_run'][k])} steps")
            )
        for k in np.flatnonzero(found["replay"][index]):
            out.append(
                dev(
                    k,
                    float(mean[k]),
                    f"replay: last {int(self.params['replay_window'][k])} values repeat an earlier sequence",
                )
            )
        for n in np.flatnonzero(found["disagree"][index]):
            a, b, slope, icpt, tol = self.params["pairs"][n]
            out.append(
                dev(
                    int(a),
                    float(slope * values[index, int(b)] + icpt),
                    f"disagrees with redundant {self.features[int(b)]} (tolerance {2 * tol:.4g})",
                )
            )
        return out


register_model(SensorIntegrityModel)
