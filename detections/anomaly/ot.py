"""OT process models over SCADA tags: multivariate reconstruction residuals and physical consistency.

``ot-process`` standardises the continuous tags (tank levels, flows, pressures)
with the training baseline and projects them on the principal components that
keep 99 % of the variance.  Normal operation lives on that subspace because the
tags are physically coupled (a running pump raises a downstream tank and the
junction pressures); a manipulation that keeps each tag inside its own normal
range still breaks the coupling and leaves a residual.  The score is the mean
squared residual over a short trailing window.  A pump or valve state column
``S_X`` with its flow ``F_X`` is also checked for consistency (ON with no flow,
OFF with flow), where training never showed such a pair, and a pump ON (OFF)
with a tank level above (below) every level seen so in the baseline reveals a
moved control setpoint even while the level stays within its alarm limits.

``ot-3sigma`` is the simple baseline every evaluation compares with: a row is
anomalous when any tag is more than three standard deviations from its mean.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.decomposition import PCA

from detections.anomaly.base import AnomalyModel, Deviation, numeric_split, register_model
from detections.anomaly.tabular import Table

#: Slack around the tank levels seen with a pump ON (OFF), as a share of the level's range.
ENVELOPE_MARGIN = 0.02
#: A flow below this (in the tag's unit) counts as "no flow" for the consistency check.
FLOW_EPSILON = 0.01


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return mean, np.where(std < 1e-9, 1.0, std)


class ProcessModel(AnomalyModel):
    name = "ot-process"
    domain = "ot"
    description = "PCA reconstruction residual over SCADA tags plus pump/valve state-flow consistency"
    limits = (
        "Learns one operating regime from the baseline period; a new regime (seasonal demand, network change) "
        "raises residuals until retrained. Needs all trained tags in each row. Hourly data: delays are in steps."
    )
    smoothing = 6
    history = 48
    variance_kept: ClassVar[float] = 0.99

    def select_features(self, table: Table) -> tuple[str, ...]:
        cont, binary = numeric_split(table)
        values = table.select(cont)
        varying = [c for c, s in zip(cont, values.std(axis=0), strict=True) if s > 1e-9]
        return tuple(varying + binary)

    def _continuous(self) -> np.ndarray:
        return np.flatnonzero(self.params["continuous"] > 0)

    def fit_arrays(self, values: np.ndarray) -> None:
        binary = np.all(np.isin(values, (0.0, 1.0)), axis=0)
        cont = values[:, ~binary]
        mean, std = _standardiser(cont)
        pca = PCA(n_components=self.variance_kept, svd_solver="full").fit((cont - mean) / std)
        pairs = []
        names = list(self.features)
        for i, name in enumerate(names):
            if binary[i] and name.startswith("S_") and "F_" + name[2:] in names:
                j = names.index("F_" + name[2:])
                if not np.any(_violations(values[:, i], values[:, j])):
                    pairs.append((i, j))
        envelope = []
        for i, name in enumerate(names):
            if not (binary[i] and name.startswith("S_")):
                continue
            on = values[:, i] == 1
            for j, level in enumerate(names):
                if level.startswith("L_") and on.any() and (~on).any():
                    margin = ENVELOPE_MARGIN * float(np.ptp(values[:, j]))
                    envelope.append((i, j, values[on, j].max() + margin, values[~on, j].min() - margin))
        self.params = {
            "envelope": np.asarray(envelope, dtype=float).reshape(-1, 4),
            "continuous": (~binary).astype(float),
            "mean": mean,
            "std": std,
            "pca_mean": pca.mean_,
            "components": pca.components_,
            "pairs": np.asarray(pairs, dtype=float).reshape(-1, 2),
        }
        self.meta["components"] = int(pca.n_components_)

    def _residuals(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = (values[:, self._continuous()] - self.params["mean"]) / self.params["std"]
        centred = z - self.params["pca_mean"]
        comp = self.params["components"]
        recon = centred @ comp.T @ comp + self.params["pca_mean"]
        return z, z - recon

    def raw_scores(self, values: np.ndarray) -> np.ndarray:
        _, resid = self._residuals(values)
        return np.asarray((resid**2).mean(axis=1))

    def consistency(self, values: np.ndarray) -> np.ndarray:
        """Per row, the number of state/flow pairs that contradict each other."""
        out = np.zeros(values.shape[0], dtype=int)
        for i, j in self.params["pairs"].astype(int):
            out += _violations(values[:, i], values[:, j])
        for i, j, top, bottom in self.params["envelope"]:
            out += _outside(values[:, int(i)], values[:, int(j)], top, bottom)
        return out

    def flags(self, values: np.ndarray) -> np.ndarray:
        return np.asarray((self.scores(values) > self.threshold) | (self.consistency(values) > 0))

    def explain_row(self, values: np.ndarray, index: int) -> list[Deviation]:
        row = values[index : index + 1]
        out: list[Deviation] = []
        for i, j in self.params["pairs"].astype(int):
            if _violations(row[:, i], row[:, j])[0]:
                state, flow = row[0, i], row[0, j]
                out.append(
                    Deviation(
                        self.features[i],
                        float(state),
                        1.0 - float(state),
                        0.0,
                        0.0,
                        0.0,
                        f"state contradicts {self.features[j]}={flow:.4g} "
                        f"(pump/valve {'ON with no' if state else 'OFF with'} flow)",
                    )
                )
        for i, j, top, bottom in self.params["envelope"]:
            if _outside(row[:, int(i)], row[:, int(j)], top, bottom)[0]:
                state, level = row[0, int(i)], row[0, int(j)]
                limit = top if state else bottom
                out.append(
                    Deviation(
                        self.features[int(j)],
                        float(level),
                        float(limit),
                        float(limit),
                        0.0,
                        0.0,
                        f"{self.features[int(i)]}={'ON' if state else 'OFF'} at a level never seen so in the baseline "
                        f"({'above' if state else 'below'} {limit:.4g}): control setpoint changed?",
                    )
                )
        z, resid = self._residuals(row)
        std, mean = self.params["std"], self.params["mean"]
        cont = self._continuous()
        for k in np.argsort(-np.abs(resid[0])):
            expected_z = z[0, k] - resid[0, k]
            out.append(
                Deviation(
                    self.features[cont[k]],
                    float(row[0, cont[k]]),
                    float(expected_z * std[k] + mean[k]),
                    float(mean[k]),
                    float(std[k]),
                    float(resid[0, k]),
                    "breaks the learned coupling with the other tags",
                )
            )
        return out


def _outside(state: np.ndarray, level: np.ndarray, top: float, bottom: float) -> np.ndarray:
    return np.asarray(((state == 1) & (level > top)) | ((state == 0) & (level < bottom)), dtype=int)


def _violations(state: np.ndarray, flow: np.ndarray) -> np.ndarray:
    return np.asarray(((state == 1) & (flow <= FLOW_EPSILON)) | ((state == 0) & (flow > FLOW_EPSILON)), dtype=int)


class ThreeSigmaModel(AnomalyModel):
    name = "ot-3sigma"
    domain = "ot"
    description = "Baseline: any tag more than 3 standard deviations from its training mean"
    limits = "Univariate: misses manipulation inside each tag's normal range; kept as the comparison baseline."
    smoothing = 1
    history = 1

    def select_features(self, table: Table) -> tuple[str, ...]:
        cont, _ = numeric_split(table)
        values = table.select(cont)
        return tuple(c for c, s in zip(cont, values.std(axis=0), strict=True) if s > 1e-9)

    def fit_arrays(self, values: np.ndarray) -> None:
        mean, std = _standardiser(values)
        self.params = {"mean": mean, "std": std}

    def default_threshold(self, train_scores: np.ndarray) -> float:
        return 3.0

    def tune_threshold(self, tune: Table) -> float:
        return 3.0  # the baseline is the fixed rule, not a tuned detector

    def raw_scores(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(np.abs((values - self.params["mean"]) / self.params["std"]).max(axis=1))

    def explain_row(self, values: np.ndarray, index: int) -> list[Deviation]:
        z = (values[index] - self.params["mean"]) / self.params["std"]
        return [
            Deviation(
                self.features[k],
                float(values[index, k]),
                float(self.params["mean"][k]),
                float(self.params["mean"][k]),
                float(self.params["std"][k]),
                float(z[k]),
                "outside 3σ",
            )
            for k in np.argsort(-np.abs(z))
        ]


register_model(ProcessModel)
register_model(ThreeSigmaModel)
