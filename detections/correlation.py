"""Sigma v2 correlation rules evaluated in the stream.

Supported types: ``event_count``, ``value_count``, ``temporal`` and
``temporal_ordered`` with ``group-by`` and ``timespan``, and every condition
operator (``gt``, ``gte``, ``lt``, ``lte``, ``eq``, ``neq``; ``value_count``
with its ``field``).  A ``temporal`` correlation may instead have an extended
condition, a boolean expression over the referenced rules (``a and not b``,
``(a or b) and c``): it is evaluated each time one of them matches, on which
rules matched in the group's window so far, so ``a and not b`` fires when ``a``
matches and ``b`` has not within the timespan before it.  State is a bounded
sliding window per (correlation, group) pair; when a correlation fires, its
window is cleared so the next alert needs a fresh set of events.  What cannot
be evaluated (extended conditions on other types) is reported by
:func:`unsupported_reason`, never silently ignored.

Memory is bounded (:data:`MAX_GROUPS` windows of at most
:data:`MAX_EVENTS_PER_GROUP` entries, least recently used evicted first).  With a
:class:`WindowState` (the composition root passes
:class:`store.detection_state.DetectionStateStore`) every window is written through
on change and read back on first use, so windows survive a restart and an evicted
window is not lost.
"""

from __future__ import annotations

import json
import operator
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from store.event import Event, format_ts, parse_ts

SUPPORTED = (
    SigmaCorrelationType.EVENT_COUNT,
    SigmaCorrelationType.VALUE_COUNT,
    SigmaCorrelationType.TEMPORAL,
    SigmaCorrelationType.TEMPORAL_ORDERED,
)


class WindowState(Protocol):
    """Where correlation windows persist (implemented by ``store.detection_state.DetectionStateStore``)."""

    def load(self, key: str) -> str | None: ...
    def save(self, key: str, value: str, expires: datetime) -> None: ...
    def delete(self, key: str) -> None: ...

#: bounds on state, so a flood of distinct groups cannot exhaust memory
MAX_GROUPS = 100_000
MAX_EVENTS_PER_GROUP = 10_000


def unsupported_reason(rule: SigmaCorrelationRule) -> str | None:
    """Why the stream evaluator cannot run this correlation, or None when it can."""
    if rule.type not in SUPPORTED:
        return f"correlation type {rule.type.name.lower()} is not evaluated in the stream yet"
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        if rule.type is not SigmaCorrelationType.TEMPORAL:
            kind = rule.type.name.lower()
            return f"extended (boolean) conditions are evaluated for temporal correlations, not {kind}"
        return None
    if not isinstance(rule.condition, SigmaCorrelationCondition):
        return f"correlation condition of type {type(rule.condition).__name__} is not supported"
    if rule.type is SigmaCorrelationType.VALUE_COUNT and not rule.condition.fieldref:
        return "value_count correlation without a condition field"
    return None


_OPERATORS: dict[SigmaCorrelationConditionOperator, Callable[[int, int], bool]] = {
    SigmaCorrelationConditionOperator.GTE: operator.ge,
    SigmaCorrelationConditionOperator.GT: operator.gt,
    SigmaCorrelationConditionOperator.EQ: operator.eq,
    SigmaCorrelationConditionOperator.NEQ: operator.ne,
    SigmaCorrelationConditionOperator.LTE: operator.le,
    SigmaCorrelationConditionOperator.LT: operator.lt,
}


def _holds(condition: SigmaCorrelationCondition, value: int) -> bool:
    return _OPERATORS[condition.op](value, condition.count)


def _truth(node: object, matched: Callable[[str], bool]) -> bool:
    """An extended condition's parse tree evaluated on which referenced rules ``matched``."""
    if isinstance(node, SigmaRuleReference):
        return matched(node.reference)
    if isinstance(node, CorrelationConditionNOT):
        return not _truth(node.args[0], matched)
    if isinstance(node, CorrelationConditionAND):
        return all(_truth(arg, matched) for arg in node.args)
    if isinstance(node, CorrelationConditionOR):
        return any(_truth(arg, matched) for arg in node.args)
    raise TypeError(f"unexpected element {type(node).__name__} in an extended correlation condition")


def rule_key(rule: object) -> str:
    """The id (or name) a correlation uses to reference a rule."""
    return str(getattr(rule, "id", None) or getattr(rule, "name", None) or getattr(rule, "title", ""))


@dataclass
class CorrelationHit:
    rule: SigmaCorrelationRule
    group: tuple[tuple[str, str], ...]
    events: list[str]
    first: datetime
    last: datetime


@dataclass
class _Window:
    items: deque[tuple[datetime, str, str, str]] = field(default_factory=deque)  # (ts, event id, base rule, value)


class Correlator:
    """Feeds base-rule matches into the correlation rules that reference them."""

    def __init__(self, correlations: Iterable[SigmaCorrelationRule], state: WindowState | None = None) -> None:
        self.state = state
        self.rules: list[SigmaCorrelationRule] = []
        self._by_base: dict[str, list[SigmaCorrelationRule]] = {}
        self._windows: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], _Window] = OrderedDict()
        for rule in correlations:
            if unsupported_reason(rule) is not None:
                continue
            self.rules.append(rule)
            for names in self._ref_names(rule):
                for name in names:
                    self._by_base.setdefault(name, []).append(rule)

    @property
    def base_rules(self) -> set[str]:
        return set(self._by_base)

    def suppressed_bases(self) -> set[str]:
        """Base rules whose own alerts are not generated (``generate: false``, the Sigma default)."""
        return {name for name, rules in self._by_base.items() if all(not r.generate for r in rules)}

    def observe(self, base: Iterable[str], event: Event) -> list[CorrelationHit]:
        """Record that ``event`` matched the base rule(s) named in ``base``; return correlations that fire."""
        hits: list[CorrelationHit] = []
        seen: set[int] = set()
        names = list(base)
        for name in names:
            for rule in self._by_base.get(name, ()):
                if id(rule) in seen:
                    continue
                seen.add(id(rule))
                hit = self._feed(rule, name, event)
                if hit is not None:
                    hits.append(hit)
        return hits

    def _feed(self, rule: SigmaCorrelationRule, base: str, event: Event) -> CorrelationHit | None:
        group = tuple((f, str(event.get(f))) for f in rule.group_by or ())
        if any(v == "None" for _, v in group):
            return None  # events without the group-by field do not belong to any group
        key = (rule_key(rule), group)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = self._restore(key)
            if len(self._windows) > MAX_GROUPS:
                self._windows.popitem(last=False)  # still persisted when a state store is attached
        else:
            self._windows.move_to_end(key)
        condition = rule.condition
        value = ""
        if rule.type is SigmaCorrelationType.VALUE_COUNT:
            assert isinstance(condition, SigmaCorrelationCondition)
            fieldref = condition.fieldref
            fname = fieldref[0] if isinstance(fieldref, list) else fieldref
            raw = event.get(str(fname))
            if raw is None:
                return None
            value = str(raw)
        window.items.append((event.timestamp, event.id, base, value))
        span = timedelta(seconds=rule.timespan.seconds)
        while window.items and window.items[0][0] < event.timestamp - span:
            window.items.popleft()
        while len(window.items) > MAX_EVENTS_PER_GROUP:
            window.items.popleft()
        if isinstance(condition, SigmaExtendedCorrelationCondition):  # temporal, checked when loaded
            have = {item[2] for item in window.items}
            refs = self._ref_names(rule)

            def matched(reference: str) -> bool:
                names = next((n for n in refs if reference in n), {reference})
                return bool(names & have)

            fired = _truth(condition.parsed, matched)
        else:
            assert isinstance(condition, SigmaCorrelationCondition)
            fired = _holds(condition, self._measure(rule, window))
        if not fired:
            self._persist(key, window, span)
            return None
        items = list(window.items)
        window.items.clear()
        self._persist(key, window, span)
        return CorrelationHit(rule, group, [i[1] for i in items], items[0][0], items[-1][0])

    def _measure(self, rule: SigmaCorrelationRule, window: _Window) -> int:
        """What the condition's count is compared with, per correlation type."""
        if rule.type is SigmaCorrelationType.EVENT_COUNT:
            measure = len(window.items)
        elif rule.type is SigmaCorrelationType.VALUE_COUNT:
            measure = len({item[3] for item in window.items})
        elif rule.type is SigmaCorrelationType.TEMPORAL:  # how many of the referenced rules matched
            have = {item[2] for item in window.items}
            measure = sum(1 for names in self._ref_names(rule) if names & have)
        else:  # temporal_ordered: how many referenced rules matched one after another, in rule order
            measure = _ordered_prefix(self._ref_names(rule), window.items)
        return measure

    @staticmethod
    def _state_key(key: tuple[str, tuple[tuple[str, str], ...]]) -> str:
        return "correlation:" + json.dumps([key[0], [list(pair) for pair in key[1]]], ensure_ascii=False)

    def _restore(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> _Window:
        window = _Window()
        if self.state is None:
            return window
        text = self.state.load(self._state_key(key))
        if text:
            for ts, event_id, base, value in json.loads(text):
                window.items.append((parse_ts(ts), event_id, base, value))
        return window

    def _persist(self, key: tuple[str, tuple[tuple[str, str], ...]], window: _Window, span: timedelta) -> None:
        if self.state is None:
            return
        state_key = self._state_key(key)
        if not window.items:
            self.state.delete(state_key)
            return
        body = json.dumps([[format_ts(ts), event_id, base, value] for ts, event_id, base, value in window.items])
        self.state.save(state_key, body, window.items[-1][0] + span)

    @staticmethod
    def _ref_names(rule: SigmaCorrelationRule) -> list[set[str]]:
        """For each referenced rule, every name it may be matched under (reference, id, name).

        A temporal correlation with an extended condition may name its rules only there.
        """
        out = []
        for ref in rule.rules or ():
            names = {ref.reference}
            target = getattr(ref, "rule", None)
            if target is not None:
                names |= {str(getattr(target, "id", "") or ""), str(getattr(target, "name", "") or "")}
            out.append(names - {""})
        if isinstance(rule.condition, SigmaExtendedCorrelationCondition):
            listed = set().union(*out) if out else set()
            out += [{name} for name in rule.condition.get_referenced_rules() if name not in listed]
        return out


def _ordered_prefix(refs: list[set[str]], items: Iterable[tuple[datetime, str, str, str]]) -> int:
    """The length of the longest prefix of ``refs`` matched in order by the window's items."""
    matched = 0
    for _, _, base, _ in items:
        if matched < len(refs) and base in refs[matched]:
            matched += 1
    return matched
