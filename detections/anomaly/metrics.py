"""Detection metrics for time series: point-wise, range-based (Tatbul et al.) and detection delay.

Point-adjusted F1 (a whole attack counted as found when one point is) flatters
detectors, so it is never reported alone: we give point-wise precision/recall/F1,
range-based recall/precision (Tatbul, Lee, Zdonik, Alam, Gottschlich, "Precision
and Recall for Time Series", NeurIPS 2018; flat positional bias, cardinality
factor 1/x), the BATADAL score S and, per attack, whether and after how many steps it was detected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def ranges(flags: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[start, stop)`` index ranges of consecutive true values."""
    padded = np.concatenate(([0], np.asarray(flags, dtype=int) != 0, [0])).astype(int)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def _range_score(targets: list[tuple[int, int]], others: list[tuple[int, int]], alpha: float) -> float:
    """Mean over ``targets`` of alpha*existence + (1-alpha)*overlap fraction*cardinality."""
    if not targets:
        return 0.0
    total = 0.0
    for target in targets:
        hits = [o for o in others if _overlap(target, o)]
        if not hits:
            continue
        covered = sum(_overlap(target, o) for o in hits) / (target[1] - target[0])
        total += alpha + (1 - alpha) * covered * (1.0 / len(hits))
    return total / len(targets)


@dataclass(frozen=True)
class Evaluation:
    precision: float
    recall: float
    f1: float
    range_precision: float
    range_recall: float
    range_f1: float
    attacks_detected: int
    attacks_total: int
    mean_detection_delay: float | None
    false_positive_rate: float
    points: int
    #: The BATADAL competition score S = (S_TTD + S_CM) / 2 (Taormina et al. 2018), for comparison with it.
    batadal_s: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def evaluate(labels: np.ndarray, flags: np.ndarray, alpha: float = 0.5) -> Evaluation:
    """Compare predicted ``flags`` with ground-truth ``labels`` (both 0/1 per time step).

    Detection delay is in time steps from an attack's first step to its first flagged step.
    """
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(flags, dtype=bool)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and flags {p.shape} differ in shape")
    tp = int(np.sum(p & y))
    fp = int(np.sum(p & ~y))
    fn = int(np.sum(~p & y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    real, pred = ranges(y), ranges(p)
    r_rec = _range_score(real, pred, alpha)
    r_prec = _range_score(pred, real, 0.0)
    delays = []
    ttd_share = []
    for start, stop in real:
        hit = np.flatnonzero(p[start:stop])
        if hit.size:
            delays.append(int(hit[0]))
        ttd_share.append((hit[0] if hit.size else stop - start) / (stop - start))
    negatives = int(np.sum(~y))
    tnr = 1 - fp / negatives if negatives else 1.0
    s_ttd = 1 - float(np.mean(ttd_share)) if ttd_share else 0.0
    return Evaluation(
        precision=round(precision, 4),
        recall=round(recall, 4),
        f1=round(_f1(precision, recall), 4),
        range_precision=round(r_prec, 4),
        range_recall=round(r_rec, 4),
        range_f1=round(_f1(r_prec, r_rec), 4),
        attacks_detected=len(delays),
        attacks_total=len(real),
        mean_detection_delay=round(float(np.mean(delays)), 2) if delays else None,
        false_positive_rate=round(fp / negatives, 4) if negatives else 0.0,
        points=int(y.size),
        batadal_s=round((s_ttd + (recall + tnr) / 2) / 2, 4),
    )
