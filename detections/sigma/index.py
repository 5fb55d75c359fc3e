"""Field-anchor index over compiled rules, so an event is only evaluated against rules it can match.

Routing by logsource (:class:`detections.sigma.matcher.RuleSet`) leaves hundreds of Windows
process-creation rules for every Sysmon event.  :class:`AnchorIndex` narrows them further with
each rule's anchors (:mod:`detections.sigma.anchors`): equality anchors are one dict lookup per
field, prefix / suffix / substring anchors are found with one Aho-Corasick pass (the
``pyahocorasick`` automaton) over the lower-cased field value.  The cost per event then grows
with the number of anchors actually present in the event, not with the number of rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ahocorasick

from detections.sigma.anchors import Anchor


class _Context(Protocol):
    def lower(self, name: str) -> str | tuple[str, ...] | None: ...


class IndexedRule(Protocol):
    @property
    def anchors(self) -> tuple[Anchor, ...] | None: ...
    @property
    def predicate(self) -> Callable[[Any], bool]: ...


class AnchorIndex:
    """The rules of one logsource set, indexed by anchor; :meth:`candidates` lists those to evaluate."""

    def __init__(self, rules: Sequence[IndexedRule]) -> None:
        self.rules = tuple(rules)
        self.always: tuple[int, ...] = ()
        self._equal: dict[str, dict[str, list[int]]] = {}
        self._automata: dict[str, Any] = {}
        always: list[int] = []
        affixes: dict[str, dict[str, list[tuple[str, int]]]] = {}
        for index, rule in enumerate(self.rules):
            anchors = rule.anchors
            if not anchors or any(kind != "eq" and not literal for _, kind, literal in anchors):
                always.append(index)
                continue
            for name, kind, literal in anchors:
                if kind == "eq":
                    self._equal.setdefault(name, {}).setdefault(literal, []).append(index)
                else:
                    affixes.setdefault(name, {}).setdefault(literal, []).append((kind, index))
        self.always = tuple(always)
        for name, literals in affixes.items():
            automaton = ahocorasick.Automaton()
            for literal, targets in literals.items():
                automaton.add_word(literal, (len(literal), tuple(targets)))
            automaton.make_automaton()
            self._automata[name] = automaton
        self.fields = tuple(sorted(set(self._equal) | set(self._automata)))

    def candidates(self, ctx: _Context) -> list[int]:
        """Indices (in load order) of the rules whose anchors the event satisfies, plus unanchored rules."""
        found: set[int] = set(self.always)
        for name in self.fields:
            value = ctx.lower(name)
            if value is None:
                continue
            for text in value if isinstance(value, tuple) else (value,):
                equal = self._equal.get(name)
                if equal is not None:
                    hit = equal.get(text)
                    if hit is not None:
                        found.update(hit)
                automaton = self._automata.get(name)
                if automaton is None or not text:
                    continue
                last = len(text) - 1
                for end, (length, targets) in automaton.iter(text):
                    for kind, index in targets:
                        if (
                            kind == "contains"
                            or (kind == "suffix" and end == last)
                            or (kind == "prefix" and end == length - 1)
                        ):
                            found.add(index)
        return sorted(found)

    def match(self, ctx: _Context) -> list[int]:
        """Indices of the rules that match: candidates whose predicate holds."""
        rules = self.rules
        return [index for index in self.candidates(ctx) if rules[index].predicate(ctx)]
