"""The model framework: what a model declares, how it is fitted, scored and explained, and the registry.

A model is a subclass of :class:`AnomalyModel` declaring its identity, domain,
training window and smoothing as class constants, and implementing fitting,
raw scoring and explanation over a matrix of feature rows.  Its learned state is
plain float arrays plus JSON metadata, so it is saved without pickle
(:mod:`detections.anomaly.storage`).  Each model module registers its class once
at the bottom with :func:`register_model`; a duplicate name is an error.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np

from detections.anomaly.errors import AnomalyError, DataError, UnknownModelError
from detections.anomaly.metrics import evaluate
from detections.anomaly.tabular import Table


@dataclass(frozen=True)
class Deviation:
    """One feature that deviated: its value, what the model expected and the baseline it learned."""

    feature: str
    value: float
    expected: float
    baseline_mean: float
    baseline_std: float
    sigmas: float
    reason: str = "residual"

    def text(self) -> str:
        if self.baseline_std == 0:  # a limit, not a distribution: the reason says it all
            return f"{self.feature}={self.value:.4g} ({self.reason})"
        return (
            f"{self.feature}={self.value:.4g} expected {self.expected:.4g} "
            f"(baseline {self.baseline_mean:.4g}±{self.baseline_std:.3g}, {self.sigmas:+.1f}σ, {self.reason})"
        )


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps (shorter at the start), so a score only looks back."""
    if window <= 1:
        return values
    sums = np.cumsum(np.concatenate(([0.0], values)))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(idx - window, 0)
    return (sums[idx] - sums[lo]) / (idx - lo)


class AnomalyModel(abc.ABC):
    """Base of every anomaly model.

    Subclasses declare ``name``, ``domain``, ``description``, ``limits`` (for the
    model card), ``training_window`` (baseline period taken from the store),
    ``smoothing`` (trailing steps averaged into the score) and threshold policy.
    """

    name: ClassVar[str]
    domain: ClassVar[str]
    description: ClassVar[str]
    limits: ClassVar[str]
    version: ClassVar[int] = 1
    training_window: ClassVar[timedelta] = timedelta(days=7)
    smoothing: ClassVar[int] = 1
    #: Without labelled tuning data the threshold is this quantile of training scores times the margin.
    threshold_quantile: ClassVar[float] = 0.999
    threshold_margin: ClassVar[float] = 1.5
    #: Rows of history the stream scorer keeps for smoothing and sequence checks.
    history: ClassVar[int] = 48

    def __init__(self) -> None:
        self.features: tuple[str, ...] = ()
        self.params: dict[str, np.ndarray] = {}
        self.meta: dict[str, Any] = {}
        self.threshold: float = float("nan")

    # --- what subclasses implement -------------------------------------------
    @abc.abstractmethod
    def select_features(self, table: Table) -> tuple[str, ...]:
        """The columns of ``table`` this model uses."""

    @abc.abstractmethod
    def fit_arrays(self, values: np.ndarray) -> None:
        """Learn ``self.params`` (float arrays) from training rows of ``self.features``."""

    @abc.abstractmethod
    def raw_scores(self, values: np.ndarray) -> np.ndarray:
        """One non-negative anomaly score per row (before smoothing)."""

    @abc.abstractmethod
    def explain_row(self, values: np.ndarray, index: int) -> list[Deviation]:
        """The deviating features of row ``index`` (given the rows before it), largest first."""

    # --- shared behaviour ------------------------------------------------------
    @property
    def trained(self) -> bool:
        return bool(self.features) and np.isfinite(self.threshold)

    def _require_trained(self) -> None:
        if not self.trained:
            raise AnomalyError(f"model {self.name!r} is not trained: run 'citysoc models train {self.name}' first")

    def scores(self, values: np.ndarray) -> np.ndarray:
        self._require_trained()
        return rolling_mean(self.raw_scores(values), self.smoothing)

    def flags(self, values: np.ndarray) -> np.ndarray:
        return self.scores(values) > self.threshold

    def fit(self, train: Table, tune: Table | None = None) -> AnomalyModel:
        """Fit on normal ``train`` rows; set the threshold from ``tune`` labels when given."""
        if len(train) < 10:
            raise DataError(f"{train.source}: {len(train)} rows are too few to train {self.name!r} (at least 10)")
        self.features = self.select_features(train)
        if not self.features:
            raise DataError(f"{train.source}: no usable feature columns for model {self.name!r}")
        x = train.select(self.features)
        self.fit_arrays(x)
        self.threshold = 0.0  # lets scores() run while the threshold is being chosen
        train_scores = self.scores(x)
        self.threshold = self.default_threshold(train_scores)
        self.meta.update(
            trained_on=train.source,
            train_rows=len(train),
            train_start=train.times[0].isoformat(),
            train_end=train.times[-1].isoformat(),
            threshold_from="training-quantile",
        )
        if tune is not None and tune.labels is not None and tune.labels.any():
            self.threshold = self.tune_threshold(tune)
            self.meta.update(tuned_on=tune.source, tune_rows=len(tune), threshold_from="best-f1-on-tuning-data")
        return self

    def default_threshold(self, train_scores: np.ndarray) -> float:
        return float(np.quantile(train_scores, self.threshold_quantile) * self.threshold_margin) or 1e-9

    def tune_threshold(self, tune: Table) -> float:
        assert tune.labels is not None
        scores = self.scores(tune.select(self.features))
        candidates = np.unique(np.quantile(scores, np.linspace(0.5, 0.999, 120)))
        best = max(candidates, key=lambda t: (evaluate(tune.labels, scores > t).f1, t))  # type: ignore[arg-type]
        return float(best)

    def explain(self, values: np.ndarray, index: int, top: int = 3) -> list[Deviation]:
        return self.explain_row(values, index)[:top]

    def state(self) -> dict[str, Any]:
        """JSON metadata of the trained model (arrays are saved separately)."""
        return {
            "model": self.name,
            "model_version": self.version,
            "domain": self.domain,
            "features": list(self.features),
            "threshold": self.threshold,
            "smoothing": self.smoothing,
            "meta": self.meta,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> AnomalyModel:
        model = cls()
        model.features = tuple(str(f) for f in state["features"])
        model.threshold = float(state["threshold"])
        model.meta = dict(state.get("meta") or {})
        model.params = {k: np.asarray(v, dtype=float) for k, v in params.items()}
        return model


MODELS: dict[str, type[AnomalyModel]] = {}


def register_model(cls: type[AnomalyModel]) -> type[AnomalyModel]:
    """Register a model class under its ``name``; a second registration of a name is an error."""
    if cls.name in MODELS:
        raise AnomalyError(
            f"anomaly model {cls.name!r} is registered twice ({MODELS[cls.name].__module__}, {cls.__module__})"
        )
    MODELS[cls.name] = cls
    return cls


def get_model(name: str) -> type[AnomalyModel]:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"no anomaly model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def numeric_split(table: Table, columns: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """Split columns into continuous ones and 0/1 state columns (pump and valve states)."""
    cont: list[str] = []
    binary: list[str] = []
    for i, name in enumerate(table.columns):
        if columns is not None and name not in columns:
            continue
        col = table.values[:, i]
        (binary if np.all(np.isin(col, (0.0, 1.0))) else cont).append(name)
    return cont, binary
