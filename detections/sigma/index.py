"""Field-anchor index over compiled rules, so an event is only evaluated against rules it can match.

Routing by logsource (:class:`detections.sigma.matcher.RuleSet`) leaves hundreds of Windows
process-creation rules for every Sysmon event.  :class:`AnchorIndex` narrows them further with
each rule's anchor clauses (:mod:`detections.sigma.anchors`): a rule is a candidate only when
every one of its clauses has an anchor present in the event.  Equality anchors are one dict
lookup per field, numeric anchors one dict lookup on the field's number, prefix / suffix /
substring anchors are found with one Aho-Corasick pass (the ``pyahocorasick`` automaton) over
the lower-cased field value.  The cost per event then grows with the number of anchors
actually present in the event, not with the number of rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import ahocorasick

from detections.sigma.anchors import Clause

#: a (rule, clause) pair packed in one int: rule index << _SHIFT | clause number
_SHIFT = 4
#: distinct values remembered per field and index
SEEN_PER_FIELD = 4096


class _Event(Protocol):
    @property
    def fields(self) -> Mapping[str, Any]: ...


class _Context(Protocol):
    @property
    def event(self) -> _Event: ...
    def lower(self, name: str) -> str | tuple[str, ...] | None: ...
    def raw(self, name: str) -> Any: ...


class IndexedRule(Protocol):
    @property
    def anchors(self) -> tuple[Clause, ...] | None: ...
    @property
    def predicate(self) -> Callable[[Any], bool]: ...


def _number(value: Any) -> float | None:
    """A value as the matcher's number test sees it (``detections.sigma.matcher._as_number``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class AnchorIndex:
    """The rules of one logsource set, indexed by anchor; :meth:`candidates` lists those to evaluate."""

    def __init__(self, rules: Sequence[IndexedRule]) -> None:
        self.rules = tuple(rules)
        self.always: tuple[int, ...] = ()
        self._equal: dict[str, dict[str, list[int]]] = {}
        self._numbers: dict[str, dict[float, list[int]]] = {}
        self._automata: dict[str, Any] = {}
        #: rule index -> how many clauses must hold (rules with one clause are not listed)
        self._needed: dict[int, int] = {}
        always: list[int] = []
        affixes: dict[str, dict[str, list[tuple[str, int]]]] = {}
        for index, rule in enumerate(self.rules):
            clauses = rule.anchors
            if (
                not clauses
                or len(clauses) >= 1 << _SHIFT
                or any(kind not in ("eq", "num") and not literal for clause in clauses for _, kind, literal in clause)
            ):
                always.append(index)
                continue
            if len(clauses) > 1:
                self._needed[index] = len(clauses)
            for number, clause in enumerate(clauses):
                target = index << _SHIFT | number
                for name, kind, literal in clause:
                    if kind == "eq":
                        self._equal.setdefault(name, {}).setdefault(literal, []).append(target)
                    elif kind == "num":
                        self._numbers.setdefault(name, {}).setdefault(float(literal), []).append(target)
                    else:
                        affixes.setdefault(name, {}).setdefault(literal, []).append((kind, target))
        self.always = tuple(always)
        for name, literals in affixes.items():
            automaton = ahocorasick.Automaton()
            for literal, targets in literals.items():
                # per kind, so a hit costs one set update (in C) instead of a loop over its targets
                by_kind = {kind: tuple(t for k, t in targets if k == kind) for kind in ("contains", "suffix", "prefix")}
                automaton.add_word(literal, (len(literal), by_kind["contains"], by_kind["suffix"], by_kind["prefix"]))
            automaton.make_automaton()
            self._automata[name] = automaton
        self.fields = tuple(sorted(set(self._equal) | set(self._automata)))
        self._field_set = frozenset(self.fields)
        #: no anchor on @timestamp / event.id, which live on the event record, not in its fields
        self._record_free = not self._field_set & {"@timestamp", "event.id"}
        self.number_fields = tuple(sorted(self._numbers))
        #: field -> value (as sent) -> its (rule, clause) hits: images, parents, users and the like
        #: repeat all day, so most values are looked up once (bounded, cleared when full)
        self._seen: dict[str, dict[str, tuple[int, ...]]] = {name: {} for name in self.fields}

    def _text_hits(self, name: str, text: str) -> tuple[int, ...]:
        """The (rule, clause) hits of one lower-cased value of a field."""
        hits: set[int] = set()
        equal = self._equal.get(name)
        if equal is not None:
            hit = equal.get(text)
            if hit is not None:
                hits.update(hit)
        automaton = self._automata.get(name)
        if automaton is not None and text:
            last = len(text) - 1
            for end, (length, contains, suffix, prefix) in automaton.iter(text):
                if contains:
                    hits.update(contains)
                if suffix and end == last:
                    hits.update(suffix)
                if prefix and end == length - 1:
                    hits.update(prefix)
        return tuple(hits)

    def _hits(self, ctx: _Context) -> set[int]:
        """The (rule, clause) pairs with an anchor present in the event."""
        hits: set[int] = set()
        seen_by_field = self._seen
        if self._record_free:
            fields: Mapping[str, Any] | None = ctx.event.fields
            present: Iterable[str] = ctx.event.fields.keys() & self._field_set  # a set intersection in C
        else:
            fields, present = None, self.fields
        for name in present:
            raw = fields[name] if fields is not None else ctx.raw(name)
            if type(raw) is str:
                seen = seen_by_field[name]
                found = seen.get(raw)  # keyed by the value as sent: a repeated value is not even lower-cased
                if found is None:
                    found = self._text_hits(name, raw.lower())
                    if len(seen) >= SEEN_PER_FIELD:
                        seen.clear()
                    seen[raw] = found
                if found:
                    hits.update(found)
                continue
            value = ctx.lower(name)  # numbers, booleans, arrays: rare, not cached
            if value is None:
                continue
            for text in value if isinstance(value, tuple) else (value,):
                hits.update(self._text_hits(name, text))
        for name in self.number_fields:
            number_raw = ctx.raw(name)
            if number_raw is None:
                continue
            numbers = self._numbers[name]
            for item in number_raw if isinstance(number_raw, tuple) else (number_raw,):
                number = _number(item)
                if number is not None:
                    hit = numbers.get(number)
                    if hit is not None:
                        hits.update(hit)
        return hits

    def candidates(self, ctx: _Context) -> list[int]:
        """Indices (in load order) of the rules all of whose clauses the event satisfies, plus unanchored rules."""
        hits = self._hits(ctx)
        if not hits:
            return list(self.always)  # built in load order
        found: set[int] = set(self.always)
        needed = self._needed
        if not needed:
            found.update(target >> _SHIFT for target in hits)
            return sorted(found)
        held: dict[int, int] = {}
        for target in hits:
            index = target >> _SHIFT
            held[index] = held.get(index, 0) + 1
        found.update(index for index, count in held.items() if count >= needed.get(index, 1))
        return sorted(found)

    def match(self, ctx: _Context) -> list[int]:
        """Indices of the rules that match: candidates whose predicate holds."""
        rules = self.rules
        return [index for index in self.candidates(ctx) if rules[index].predicate(ctx)]
