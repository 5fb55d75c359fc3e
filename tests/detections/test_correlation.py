"""Correlation rules fire exactly at their thresholds, in order where asked, and across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

from detections.correlation import Correlator, unsupported_reason
from store.detection_state import DetectionStateStore
from tests.helpers import event

BASES = """
title: Camera login failure
id: 0b0c1d7e-1111-4a53-9a55-000000000001
name: camera_login_failure
logsource: {product: citysoc, service: camera}
detection:
  sel: {event.action: login-failed}
  condition: sel
---
title: MQTT wildcard subscribe
id: 0b0c1d7e-1111-4a53-9a55-000000000002
name: mqtt_wildcard
logsource: {product: citysoc, service: mqtt}
detection:
  sel: {event.action: subscribe}
  condition: sel
---
"""


def _correlation(body: str) -> SigmaCorrelationRule:
    collection = SigmaCollection.from_yaml(BASES + body)
    collection.resolve_rule_references()
    (rule,) = [r for r in collection if isinstance(r, SigmaCorrelationRule)]
    return rule


EVENT_COUNT = """
title: Brute force
id: 0b0c1d7e-2222-4a53-9a55-000000000001
correlation:
  type: event_count
  rules: [camera_login_failure]
  group-by: [source.ip]
  timespan: 5m
  condition: {gte: 3}
"""

VALUE_COUNT = """
title: Many users from one address
id: 0b0c1d7e-2222-4a53-9a55-000000000002
correlation:
  type: value_count
  rules: [camera_login_failure]
  group-by: [source.ip]
  timespan: 5m
  condition: {gte: 3, field: user.name}
"""

TEMPORAL_ORDERED = """
title: Failure then subscribe
id: 0b0c1d7e-2222-4a53-9a55-000000000003
correlation:
  type: temporal_ordered
  rules: [camera_login_failure, mqtt_wildcard]
  group-by: [source.ip]
  timespan: 5m
"""

TEMPORAL = TEMPORAL_ORDERED.replace("temporal_ordered", "temporal").replace("000000000003", "000000000004")

FAIL = "camera_login_failure"
SUB = "mqtt_wildcard"


def _feed(correlator: Correlator, base: str, second: float, ip: str = "10.0.0.9", user: str = "admin") -> int:
    e = event(second, {"source.ip": ip, "user.name": user, "event.action": base})
    return len(correlator.observe([base], e))


@pytest.mark.parametrize(("events", "fires"), [(2, 0), (3, 1), (4, 1)])
def test_event_count_fires_exactly_at_its_threshold(events: int, fires: int) -> None:
    correlator = Correlator([_correlation(EVENT_COUNT)])
    hits = sum(_feed(correlator, FAIL, i) for i in range(events))
    assert hits == fires  # the 4th starts a fresh window after the alert at the 3rd


def test_event_count_window_expires_and_groups_are_separate() -> None:
    correlator = Correlator([_correlation(EVENT_COUNT)])
    assert _feed(correlator, FAIL, 0) + _feed(correlator, FAIL, 10) == 0
    assert _feed(correlator, FAIL, 20, ip="10.0.0.10") == 0  # another group
    assert _feed(correlator, FAIL, 400) == 0  # the first two fell out of the 5-minute window


@pytest.mark.parametrize(("users", "fires"), [(2, 0), (3, 1), (4, 1)])
def test_value_count_counts_distinct_values(users: int, fires: int) -> None:
    correlator = Correlator([_correlation(VALUE_COUNT)])
    hits = sum(_feed(correlator, FAIL, i, user=f"user{i % users}") for i in range(5))
    assert hits == fires  # 3 distinct users fire once; the next two alone stay below


def test_temporal_ordered_needs_the_rule_order() -> None:
    correlator = Correlator([_correlation(TEMPORAL_ORDERED)])
    assert _feed(correlator, SUB, 0) == 0
    assert _feed(correlator, FAIL, 1) == 0  # both rules matched, but in the wrong order
    assert _feed(correlator, SUB, 2) == 1  # now a subscribe follows the failure
    ordered = Correlator([_correlation(TEMPORAL_ORDERED)])
    assert _feed(ordered, FAIL, 0) == 0
    assert _feed(ordered, SUB, 1) == 1


def test_temporal_fires_in_any_order() -> None:
    correlator = Correlator([_correlation(TEMPORAL)])
    assert _feed(correlator, SUB, 0) == 0
    assert _feed(correlator, FAIL, 1) == 1


def test_windows_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "citysoc.db"
    state = DetectionStateStore(path)
    before = Correlator([_correlation(EVENT_COUNT)], state=state)
    assert _feed(before, FAIL, 0) + _feed(before, FAIL, 1) == 0
    state.close()

    restarted = Correlator([_correlation(EVENT_COUNT)], state=DetectionStateStore(path))
    assert _feed(restarted, FAIL, 2) == 1  # the third event counts the two from before the restart
    assert DetectionStateStore(path).count() == 0  # the fired window was cleared, in memory and on disk
    without_state = Correlator([_correlation(EVENT_COUNT)])
    assert _feed(without_state, FAIL, 2) == 0


@pytest.mark.parametrize(
    ("op", "fired"),
    [
        # at which event (1st to 4th in the group) an operator with threshold 3 fires
        ("gt", [4]),  # below and at the threshold: nothing
        ("gte", [3]),
        ("eq", [3]),
        # each single event already holds: it fires and clears its window, so every event fires
        ("lte", [1, 2, 3, 4]),
        ("lt", [1, 2, 3, 4]),
        ("neq", [1, 2, 3, 4]),
    ],
)
def test_every_operator_fires_below_at_or_above_its_threshold_as_it_says(op: str, fired: list[int]) -> None:
    body = EVENT_COUNT.replace("condition: {gte: 3}", f"condition: {{{op}: 3}}")
    correlator = Correlator([_correlation(body)])
    assert [n for n in range(1, 5) if _feed(correlator, FAIL, n)] == fired


def test_neq_and_lt_do_not_fire_where_the_count_is_excluded() -> None:
    body = VALUE_COUNT.replace("{gte: 3, field: user.name}", "{neq: 1, field: user.name}")
    not_one = Correlator([_correlation(body)])
    assert _feed(not_one, FAIL, 0, user="a") == 0  # one distinct user: excluded
    assert _feed(not_one, FAIL, 1, user="a") == 0
    assert _feed(not_one, FAIL, 2, user="b") == 1  # two distinct users
    below = Correlator([_correlation(EVENT_COUNT.replace("{gte: 3}", "{lt: 1}"))])
    assert _feed(below, FAIL, 0) == 0  # one event is not fewer than one


EXTENDED = """
title: Failure without a subscribe
id: 0b0c1d7e-2222-4a53-9a55-000000000005
correlation:
  type: temporal
  group-by: [source.ip]
  timespan: 5m
  condition: camera_login_failure and not mqtt_wildcard
"""


def test_an_extended_condition_is_evaluated_on_the_rules_matched_in_the_window() -> None:
    correlator = Correlator([_correlation(EXTENDED)])
    assert _feed(correlator, SUB, 0) == 0  # the subscribe alone: the failure is missing
    assert _feed(correlator, FAIL, 1) == 0  # failure, but a subscribe in the window: "not" excludes it
    assert _feed(correlator, FAIL, 400) == 1  # the subscribe fell out of the window: failure alone fires
    either = Correlator([_correlation(EXTENDED.replace("and not", "or"))])
    assert _feed(either, SUB, 0) == 1


def test_an_extended_condition_survives_a_restart_and_other_types_report_it(tmp_path: Path) -> None:
    both = EXTENDED.replace("and not", "and")
    path = tmp_path / "citysoc.db"
    state = DetectionStateStore(path)
    assert _feed(Correlator([_correlation(both)], state=state), FAIL, 0) == 0
    state.close()
    assert _feed(Correlator([_correlation(both)], state=DetectionStateStore(path)), SUB, 1) == 1
    ordered = _correlation(both.replace("type: temporal", "type: temporal_ordered"))
    assert unsupported_reason(ordered) == (
        "extended (boolean) conditions are evaluated for temporal correlations, not temporal_ordered"
    )
    assert Correlator([ordered]).rules == []
