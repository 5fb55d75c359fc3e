from __future__ import annotations

import numpy as np

from detections.anomaly.metrics import evaluate, ranges


def test_ranges_are_half_open() -> None:
    assert ranges(np.array([0, 1, 1, 0, 1])) == [(1, 3), (4, 5)]


def test_pointwise_range_and_delay() -> None:
    labels = np.array([0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0])
    flags = np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0])
    ev = evaluate(labels, flags)
    assert (ev.precision, ev.recall) == (round(2 / 3, 4), round(2 / 6, 4))
    assert ev.attacks_detected == 1 and ev.attacks_total == 2
    assert ev.mean_detection_delay == 2.0
    # range recall: attack 1 exists (0.5) + half covered (0.5*0.5); attack 2 missed -> 0.75/2
    assert ev.range_recall == 0.375
    # range precision: prediction 1 fully inside an attack (1.0), prediction 2 outside (0) -> 0.5
    assert ev.range_precision == 0.5
    assert ev.false_positive_rate == round(1 / 6, 4)
    # S_TTD = 1 - mean(2/4, 2/2) = 0.25; S_CM = (2/6 + 5/6) / 2
    assert ev.batadal_s == round((0.25 + (2 / 6 + 5 / 6) / 2) / 2, 4)
