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
* OR needs every alternative anchored; its clauses are the unions of one clause picked
  from each alternative (distributed, :func:`_distributed`), the most selective ones kept;
* AND keeps the clauses of every anchored operand (up to :data:`MAX_CLAUSES`, most selective
  first);
* NOT is unanchored (its truth does not require any literal to be present).

The result is a *necessary* condition, never a sufficient one: the compiled predicate still
decides.  A rule without anchors is always evaluated, so a wrong anchor can only cost speed if
it is too broad, never a missed detection, as long as every anchor is necessary.

*Exclusions* go the other way: sets of *exact* anchors whose presence proves a rule cannot
match, read from its ``not filter`` parts (:func:`rule_exclusions`).  An anchor is exact when
it holds exactly when its leaf value matches: a case-insensitive string whose only wildcards
are a leading and/or trailing ``*`` (``Image|endswith: '\\svchost.exe'`` holds on precisely
the values that end so, as the matcher compares lower-cased text too).  An exclusion is a
conjunction: a filter ``Image|startswith: C:\\Windows\\ and Image|endswith: \\wsl.exe`` is
proved by both anchors together.  Anything else in a filter (regular expressions, ``null``,
``|cased``, wildcards inside, keywords, numbers) only means that part of it proves nothing; a
rule with no provable filter has no exclusions.  They travel with the clauses as
:class:`RuleAnchors`, a tuple of clauses that also carries them.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    Placeholder,
    SigmaCasedString,
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
#: an OR is distributed over its alternatives' clauses when that makes at most this many picks
MAX_DISTRIBUTED = 27
#: exclusions kept per rule, and anchors per exclusion (an AND of filters multiplies out)
MAX_EXCLUSIONS = 32
MAX_EXCLUSION_ANCHORS = 3


class RuleAnchors(tuple[Clause, ...]):
    """A rule's anchor clauses (all hold on every match), carrying its exclusions.

    ``exclusions``: conjunctions of exact anchors; when every anchor of one of them is present in
    an event, the rule cannot match it.  A tuple of clauses first, so code that only reads the
    clauses (and equality with a plain tuple) is unchanged; empty when only exclusions are known.
    """

    exclusions: tuple[Clause, ...]

    def __new__(cls, clauses: Iterable[Clause], exclusions: Iterable[Clause] = ()) -> RuleAnchors:
        self = super().__new__(cls, clauses)
        self.exclusions = tuple(exclusions)
        return self


#: fields a keyword is searched in (kept equal to ``detections.sigma.matcher.KEYWORD_FIELDS``)
KEYWORD_FIELDS: tuple[str, ...] = ("message", "event.original")

_RANK = {"eq": 0, "num": 0, "prefix": 1, "suffix": 1, "contains": 2}


def _joined_parts(value: SigmaString) -> list[str | SpecialChars] | None:
    """The value's parts with adjacent text joined, or None when it holds an unexpanded placeholder."""
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            return None
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] = parts[-1] + part
        else:
            parts.append(part)
    return parts


def _string_anchor(name: str, value: SigmaString, keyword: bool) -> Anchor | None:
    parts = _joined_parts(value)
    if parts is None:
        return None
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


#: single characters rare enough in event text to anchor on when a pattern has nothing longer
#: (a backtick: PowerShell obfuscation ``IN`V`o`Ke``); letters, digits, paths' ``\\ . -`` are not
_RARE_CHARACTERS = frozenset("`^|<>!;$")


def _selective(literal: str) -> bool:
    return len(literal) >= 2 or literal in _RARE_CHARACTERS


def _best(options: list[list[str]]) -> list[str] | None:
    """The option whose shortest alternative is longest (the most selective necessary literal set)."""
    usable = [o for o in options if o and all(_selective(t) for t in o)]
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


def _distributed(alternatives: list[list[list[Anchor]]]) -> list[list[Anchor]] | None:
    """The clauses of an OR of CNFs: (a and b) or c holds only where (a or c) and (b or c) both hold.

    Every pick of one clause per alternative, united, is a clause of the OR; the most selective
    :data:`MAX_CLAUSES` are kept.  So ``Image|contains: \\windows\\ and CommandLine|contains:
    \\..\\`` or ``CommandLine|contains: .exe\\..\\`` still needs a ``..`` in the command line
    when the common ``\\windows\\`` is present.  When the picks would exceed
    :data:`MAX_DISTRIBUTED`, one clause: the union of each alternative's most selective clause.
    """
    if math.prod(len(clauses) for clauses in alternatives) > MAX_DISTRIBUTED:
        union = [a for clauses in alternatives for a in min(clauses, key=_cost)]
        return [union] if union else None
    # distinct picks in product order, so ties in cost keep the same clauses in every process
    unions = (tuple(dict.fromkeys(a for clause in pick for a in clause)) for pick in itertools.product(*alternatives))
    picks = dict.fromkeys(unions)
    return sorted((list(pick) for pick in picks if pick), key=_cost)[:MAX_CLAUSES] or None


def node_clauses(node: object) -> list[list[Anchor]] | None:
    """Anchor clauses of one condition node (all hold on a match), or None when it can hold without any."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        leaf = _leaf((node.field,), node.value, keyword=False)
        return None if leaf is None else [leaf]
    if isinstance(node, ConditionValueExpression):
        leaf = _leaf(KEYWORD_FIELDS, node.value, keyword=True)
        return None if leaf is None else [leaf]
    if isinstance(node, ConditionOR):
        alternatives: list[list[list[Anchor]]] = []
        for arg in node.args:
            inner = node_clauses(arg)
            if inner is None:
                return None
            alternatives.append(inner)
        return _distributed(alternatives)
    if isinstance(node, ConditionAND):
        clauses = [clause for arg in node.args for clause in node_clauses(arg) or ()]
        return sorted(clauses, key=_cost)[:MAX_CLAUSES] if clauses else None
    return None  # NOT, and anything unknown


def node_anchors(node: object) -> list[Anchor] | None:
    """The most selective single clause of a node (anchors one of which holds on every match)."""
    clauses = node_clauses(node)
    return min(clauses, key=_cost) if clauses else None


def _clauses(trees: list[object]) -> tuple[Clause, ...]:
    per_tree = [node_clauses(tree) for tree in trees]
    if not per_tree or any(c is None for c in per_tree):
        return ()
    # alternatives: one clause, the union of each one's most selective clause
    clauses = per_tree[0] or [] if len(per_tree) == 1 else [[a for c in per_tree for a in min(c or [[]], key=_cost)]]
    return tuple(tuple(dict.fromkeys(clause)) for clause in clauses if clause)


def rule_anchors(trees: Iterable[object]) -> RuleAnchors | None:
    """Anchor clauses and exclusions of a rule whose conditions (alternatives) are ``trees``.

    None when there are neither; no clauses means: always evaluate (unless an exclusion holds).
    """
    items = list(trees)
    clauses, exclusions = _clauses(items), rule_exclusions(items)
    return RuleAnchors(clauses, exclusions) if clauses or exclusions else None


# ------------------------------------------------------------------ exclusions (exact anchors)
# Sound by construction: each conjunction returned by _proves_true holds only on events where
# the node is true, each one returned by _proves_false only where it is false; dropping any of
# them (the caps) loses speed, never a match.


#: where the one text part sits between ``*`` wildcards -> the anchor kind that holds exactly then
_EXACT_SHAPES = {(True,): "eq", (True, False): "prefix", (False, True): "suffix", (False, True, False): "contains"}


def exact_anchor(name: str, value: SigmaType) -> Anchor | None:
    """The anchor that holds exactly when ``value`` matches the field (see the module docstring), or None."""
    if not isinstance(value, SigmaString) or isinstance(value, SigmaCasedString):
        return None
    parts = _joined_parts(value)
    if parts is None:
        return None
    multi = SpecialChars.WILDCARD_MULTI
    texts = [p.lower() for p in parts if isinstance(p, str)]
    if not parts:
        return (name, "eq", "")
    if len(texts) != 1 or not texts[0] or any(p is not multi for p in parts if not isinstance(p, str)):
        return None
    kind = _EXACT_SHAPES.get(tuple(isinstance(p, str) for p in parts))
    return None if kind is None else (name, kind, texts[0])


def _capped(conjunctions: Iterable[tuple[Anchor, ...]]) -> list[tuple[Anchor, ...]]:
    unique = dict.fromkeys(tuple(dict.fromkeys(c)) for c in conjunctions if len(set(c)) <= MAX_EXCLUSION_ANCHORS)
    # fewest anchors first: one present anchor is the cheapest proof to check
    return sorted(unique, key=len)[:MAX_EXCLUSIONS]


def _proves_true(node: object) -> list[tuple[Anchor, ...]]:
    """Conjunctions of exact anchors, each of which (all anchors present) proves ``node`` true."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _capped((a,) for item in _values(node.value) if (a := exact_anchor(node.field, item)) is not None)
    if isinstance(node, ConditionOR):  # one true alternative is enough
        return _capped(c for arg in node.args for c in _proves_true(arg))
    if isinstance(node, ConditionAND):  # every operand must be proved: the product of their proofs
        product: list[tuple[Anchor, ...]] = [()]
        for arg in node.args:
            proofs = _proves_true(arg)
            product = _capped(p + q for p in product for q in proofs)
            if not product:
                return []
        return product
    if isinstance(node, ConditionNOT):
        return _proves_false(node.args[0])
    return []  # keywords, and anything unknown: no proof


def _proves_false(node: object) -> list[tuple[Anchor, ...]]:
    """Conjunctions of exact anchors, each of which proves ``node`` false."""
    if isinstance(node, ConditionNOT):
        return _proves_true(node.args[0])
    if isinstance(node, ConditionAND):  # one false operand is enough
        return _capped(c for arg in node.args for c in _proves_false(arg))
    return []  # an OR would need every alternative proved false at once: not worth it


def rule_exclusions(trees: Iterable[object]) -> tuple[Clause, ...]:
    """Conjunctions of exact anchors, each of which (all present) proves the rule cannot match."""
    items = list(trees)
    # several conditions are alternatives: the rule fails only when all fail, rare enough to skip
    return tuple(_proves_false(items[0])) if len(items) == 1 else ()
