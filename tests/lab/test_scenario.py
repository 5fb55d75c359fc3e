from __future__ import annotations

from lab import scenario
from tests.helpers import T0


def test_same_seed_gives_byte_identical_telemetry() -> None:
    a = scenario.benign(7, T0) + scenario.attack(7, T0)
    b = scenario.benign(7, T0) + scenario.attack(7, T0)
    assert [(e.channel, e.line) for e in a] == [(e.channel, e.line) for e in b]
    c = scenario.benign(8, T0)
    assert [e.line for e in c] != [e.line for e in scenario.benign(7, T0)]


def test_ground_truth_labels_mark_only_the_attack() -> None:
    benign = scenario.benign(7, T0)
    attack = scenario.attack(7, T0)
    assert not any(e.malicious for e in benign)
    assert all(e.malicious for e in attack)
    assert attack[0].ts == T0  # the attack starts when asked
    assert sum(1 for e in benign if e.label == "malformed") == 1
