"""Field anchors of a Sigma rule: literal tests at least one of which holds on every event it matches.

The stream evaluator (:mod:`detections.sigma.index`) uses anchors to skip rules: an event is
evaluated only against rules with an anchor present in the event, plus the few rules that
have no anchor.  An anchor is ``(field, kind, literal)`` with ``kind`` one of ``eq``,
``prefix``, ``suffix`` or ``contains`` on the lower-cased field text.

Extraction walks the condition tree after the processing pipeline, like the matcher:

* a field/value leaf gives one anchor per string value (a wildcard pattern anchors on its
  longest literal part); values that are not literal text (regex, CIDR, comparisons, null,
  exists, field references, numbers, booleans) give none, which makes the leaf unanchored;
* OR needs every alternative anchored and unions their anchors;
* AND needs one anchored operand and keeps the most selective operand's anchors;
* NOT is unanchored (its truth does not require any literal to be present).

The result is a *necessary* condition, never a sufficient one: the compiled predicate still
decides.  A rule without anchors is always evaluated, so a wrong anchor can only cost speed if
it is too broad, never a missed detection, as long as every anchor is necessary.
"""

from __future__ import annotations

from collections.abc import Iterable

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import Placeholder, SigmaExpansion, SigmaString, SigmaType, SpecialChars

#: (field, kind, lower-cased literal)
Anchor = tuple[str, str, str]

#: fields a keyword is searched in (kept equal to ``detections.sigma.matcher.KEYWORD_FIELDS``)
KEYWORD_FIELDS: tuple[str, ...] = ("message", "event.original")

_RANK = {"eq": 0, "prefix": 1, "suffix": 1, "contains": 2}


def _string_anchor(name: str, value: SigmaString, keyword: bool) -> Anchor | None:
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            return None
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] = parts[-1] + part
        else:
            parts.append(part)
    texts = [p.lower() for p in parts if isinstance(p, str)]
    if keyword:  # a keyword is a substring search whatever its wildcards
        longest = max(texts, key=len, default="")
        return (name, "contains", longest) if longest else None
    if not parts:
        return (name, "eq", "")
    multi = SpecialChars.WILDCARD_MULTI
    if len(parts) == 1 and isinstance(parts[0], str):
        return (name, "eq", texts[0])
    if len(parts) == 2 and parts[1] is multi and isinstance(parts[0], str):
        return (name, "prefix", texts[0])
    if len(parts) == 2 and parts[0] is multi and isinstance(parts[1], str):
        return (name, "suffix", texts[0])
    longest = max(texts, key=len, default="")
    return (name, "contains", longest) if longest else None


def _values(value: SigmaType) -> Iterable[SigmaType]:
    if isinstance(value, SigmaExpansion):
        for inner in value.values:
            yield from _values(inner)
    else:
        yield value


def _leaf(names: tuple[str, ...], value: SigmaType, keyword: bool) -> list[Anchor] | None:
    out: list[Anchor] = []
    for item in _values(value):
        if not isinstance(item, SigmaString):
            return None
        for name in names:
            anchor = _string_anchor(name, item, keyword)
            if anchor is None:
                return None
            out.append(anchor)
    return out or None


def _cost(anchors: list[Anchor]) -> tuple[int, int, int]:
    """Lower is more selective: long literals first (``high`` is common, ``\\wmic.exe`` is not), few anchors."""
    return (-min(len(a[2]) for a in anchors), max(_RANK[a[1]] for a in anchors), len(anchors))


def node_anchors(node: object) -> list[Anchor] | None:
    """Anchors of one condition node, or None when the node can hold without any literal."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _leaf((node.field,), node.value, keyword=False)
    if isinstance(node, ConditionValueExpression):
        return _leaf(KEYWORD_FIELDS, node.value, keyword=True)
    if isinstance(node, ConditionOR):
        union: list[Anchor] = []
        for arg in node.args:
            inner = node_anchors(arg)
            if inner is None:
                return None
            union += inner
        return union or None
    if isinstance(node, ConditionAND):
        options = [a for a in (node_anchors(arg) for arg in node.args) if a]
        return min(options, key=_cost) if options else None
    if isinstance(node, ConditionNOT):
        return None
    return None


def rule_anchors(trees: Iterable[object]) -> tuple[Anchor, ...] | None:
    """Anchors of a rule whose conditions (alternatives) are ``trees``; None means always evaluate."""
    out: list[Anchor] = []
    for tree in trees:
        inner = node_anchors(tree)
        if inner is None:
            return None
        out += inner
    return tuple(dict.fromkeys(out)) or None
