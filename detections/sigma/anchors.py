"""Field anchors of a Sigma rule: literal tests that must hold on every event it matches.

The stream evaluator (:mod:`detections.sigma.index`) uses anchors to skip rules: an event is
evaluated only against rules whose anchor clauses all hold on it, plus the few rules that have
none.  An anchor is ``(field, kind, literal)`` with ``kind`` one of ``eq``, ``prefix``,
``suffix`` or ``contains`` on the lower-cased field text, or ``num`` (the field's value as a
number equals ``float(literal)``, as the matcher compares numbers).  A *clause* is a set of
anchors at least one of which holds; a rule's anchors are clauses that all hold (a CNF).

Extraction walks the condition tree after the processing pipeline, like the matcher:

* a field/value leaf gives one clause with one anchor per value: a string anchors on its
  longest literal part (by wildcard shape), a number on ``num``, a regular expression on the
  longest literal every match must contain (``re`` parse tree: literal runs, groups,
  alternations where every branch has one, repeats taken at least once; under ``(?i)``
  runs stop at ``i``, ``s`` and non-ASCII letters, which Unicode case folding can match with
  other letters); values with no such literal (CIDR, comparisons, null, exists, field
  references, booleans) make the leaf unanchored;
* OR needs every alternative anchored and gives one clause: the union of each
  alternative's most selective clause;
* AND keeps the clauses of every anchored operand (up to :data:`MAX_CLAUSES`, most selective
  first);
* NOT is unanchored (its truth does not require any literal to be present).

The result is a *necessary* condition, never a sufficient one: the compiled predicate still
decides.  A rule without anchors is always evaluated, so a wrong anchor can only cost speed if
it is too broad, never a missed detection, as long as every anchor is necessary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    Placeholder,
    SigmaExpansion,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

#: (field, kind, lower-cased literal)
Anchor = tuple[str, str, str]
#: anchors at least one of which holds on every matching event
Clause = tuple[Anchor, ...]

#: clauses kept per AND: each costs index work per event, the first ones filter the most
MAX_CLAUSES = 3

#: fields a keyword is searched in (kept equal to ``detections.sigma.matcher.KEYWORD_FIELDS``)
KEYWORD_FIELDS: tuple[str, ...] = ("message", "event.original")

_RANK = {"eq": 0, "num": 0, "prefix": 1, "suffix": 1, "contains": 2}


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


# ------------------------------------------------------------------ regular expressions
# The parse tree of the standard library's engine (re._parser) is the same one re.compile uses,
# so the literals read from it are the ones the compiled pattern needs.  Anything unexpected
# in it (a new Python version) makes the pattern unanchored: slower, never a missed match.
_UNSAFE_FOLDED = frozenset("isIS")


def _literal_ok(char: str, ignore_case: bool) -> bool:
    return char.isascii() and not (ignore_case and char in _UNSAFE_FOLDED)


def _best(options: list[list[str]]) -> list[str] | None:
    """The option whose shortest alternative is longest (the most selective necessary literal set)."""
    usable = [o for o in options if o and min(len(t) for t in o) >= 2]
    return max(usable, key=lambda o: min(len(t) for t in o)) if usable else None


def _required(items: Any, ignore_case: bool) -> list[str] | None:
    """Literals one of which every match of the (sub)pattern contains, or None."""
    import re._constants as c  # private: imported here, not at module load

    options: list[list[str]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            options.append(["".join(run)])
            run.clear()

    for op, av in items:
        if op is c.LITERAL and _literal_ok(chr(av), ignore_case):
            run.append(chr(av))
            continue
        flush()
        if op is c.SUBPATTERN:
            _group, add_flags, _del_flags, inner = av
            found = _required(inner, ignore_case or bool(add_flags & re.IGNORECASE))
        elif op is c.BRANCH:
            branches = [_required(alt, ignore_case) for alt in av[1]]
            found = None if any(b is None for b in branches) else [t for b in branches for t in b or ()]
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[0] >= 1:
            found = _required(av[2], ignore_case)
        elif op is c.ATOMIC_GROUP:
            found = _required(av, ignore_case)
        else:
            found = None
        if found:
            options.append(found)
    flush()
    return _best(options)


def regex_literals(pattern: str, flags: int = 0) -> list[str] | None:
    """Lower-cased literals one of which every match of ``pattern`` contains; None when there are none."""
    try:
        import re._parser as parser

        parsed = parser.parse(pattern, flags)
        found = _required(parsed, bool(parsed.state.flags & re.IGNORECASE))
    except Exception:  # any surprise in a private parse tree means: no anchor
        return None
    return sorted({t.lower() for t in found}) if found else None


def _regex_flags(value: SigmaRegularExpression) -> int:
    flags = 0
    for flag in value.flags:
        flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
    return flags


# ------------------------------------------------------------------ condition tree


def _item_anchors(name: str, item: SigmaType, keyword: bool) -> list[Anchor] | None:
    if isinstance(item, SigmaString):
        anchor = _string_anchor(name, item, keyword)
        return None if anchor is None else [anchor]
    if isinstance(item, SigmaNumber) and not isinstance(item, SigmaTimestampPart):
        if keyword:  # the matcher searches a keyword number as its text
            return [(name, "contains", str(item.number).lower())]
        return [(name, "num", repr(float(item.number)))]
    if isinstance(item, SigmaRegularExpression) and not item.regexp.contains_placeholder():
        literals = regex_literals(str(item.regexp), _regex_flags(item))
        return None if literals is None else [(name, "contains", t) for t in literals]
    return None


def _leaf(names: tuple[str, ...], value: SigmaType, keyword: bool) -> list[Anchor] | None:
    out: list[Anchor] = []
    for item in _values(value):
        for name in names:
            anchors = _item_anchors(name, item, keyword)
            if anchors is None:
                return None
            out += anchors
    return out or None


def _cost(anchors: Iterable[Anchor]) -> tuple[int, int, int]:
    """Lower is more selective: long literals first (``high`` is common, ``\\wmic.exe`` is not), few anchors."""
    items = list(anchors)
    return (-min(len(a[2]) for a in items), max(_RANK[a[1]] for a in items), len(items))


def node_clauses(node: object) -> list[list[Anchor]] | None:
    """Anchor clauses of one condition node (all hold on a match), or None when it can hold without any."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        leaf = _leaf((node.field,), node.value, keyword=False)
        return None if leaf is None else [leaf]
    if isinstance(node, ConditionValueExpression):
        leaf = _leaf(KEYWORD_FIELDS, node.value, keyword=True)
        return None if leaf is None else [leaf]
    if isinstance(node, ConditionOR):
        union: list[Anchor] = []
        for arg in node.args:
            inner = node_clauses(arg)
            if inner is None:
                return None
            union += min(inner, key=_cost)
        return [union] if union else None
    if isinstance(node, ConditionAND):
        clauses = [clause for arg in node.args for clause in node_clauses(arg) or ()]
        return sorted(clauses, key=_cost)[:MAX_CLAUSES] if clauses else None
    return None  # NOT, and anything unknown


def node_anchors(node: object) -> list[Anchor] | None:
    """The most selective single clause of a node (anchors one of which holds on every match)."""
    clauses = node_clauses(node)
    return min(clauses, key=_cost) if clauses else None


def rule_anchors(trees: Iterable[object]) -> tuple[Clause, ...] | None:
    """Anchor clauses of a rule whose conditions (alternatives) are ``trees``; None means always evaluate."""
    per_tree = [node_clauses(tree) for tree in trees]
    if not per_tree or any(c is None for c in per_tree):
        return None
    # alternatives: one clause, the union of each one's most selective clause
    clauses = per_tree[0] or [] if len(per_tree) == 1 else [[a for c in per_tree for a in min(c or [[]], key=_cost)]]
    out = tuple(tuple(dict.fromkeys(clause)) for clause in clauses if clause)
    return out or None
