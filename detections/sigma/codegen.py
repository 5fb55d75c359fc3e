"""Turn a Sigma rule's condition, already reduced to typed leaves, into one generated Python function.

:mod:`detections.sigma.matcher` reduces a parsed condition to the small tree of this module
(:class:`AnyOf` / :class:`AllOf` / :class:`Negation` over :class:`TextLeaf`, :class:`RawLeaf`,
:class:`Presence` and :class:`CallLeaf`); :func:`generate` writes the source of a single function
``predicate(ctx)`` for it and compiles it.  Against nested closures (one Python call per node and
per field access) the generated function fetches each field once, inlines ``==`` / ``in`` /
``startswith`` / ``endswith`` tests and precompiled-regex calls, and lets Python's own ``and`` /
``or`` / ``not`` short-circuit.

Rule text never becomes code: every literal reaches the source through :func:`repr` of a ``str``
(field names, equality values, affixes) or as a named constant of the function's namespace
(sets, tuples, compiled regexes, the closures used for rare value shapes).  Names in the source
are generated (``f0``, ``c3``), never taken from the rule.

A regular expression is only run when the literal texts every match must contain
(:func:`required_texts`) occur in the value: ``in`` on a string is a fast scan, and it settles
most non-matching values before the regex engine starts.

Conjunctions and disjunctions are reordered so that cheap tests run first (equality before affixes
before substrings before regexes before closure calls), and in a conjunction the negated operands
(rule filters, which hold on nearly every event) after the others; every leaf is free of side
effects, so the order changes the cost, never the result.
"""

from __future__ import annotations

import re
import re._parser as sre_parser  # the parser re itself uses; sre_parse is its deprecated alias
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from store.event import interned_code

#: names Event.get answers from the record itself rather than from its fields
RECORD_FIELDS = frozenset({"@timestamp", "event.id"})


@dataclass(frozen=True)
class StringTests:
    """OR-ed string values of one field, classified once: a value matches when any part holds."""

    equal: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    needles: tuple[str, ...] = ()
    #: the remaining wildcard patterns as one regex, used with ``fullmatch``
    regex: re.Pattern[str] | None = None
    #: a bare ``*``: any value matches
    anything: bool = False


@dataclass(frozen=True)
class TextLeaf:
    """String tests on a field's lower-cased text (``ctx[name]``); ``fallback`` tests one array element."""

    name: str
    tests: StringTests
    fallback: Callable[[str], bool] = field(repr=False)


@dataclass(frozen=True)
class RawLeaf:
    """Tests on a field's value as sent.

    A text value runs ``cased`` (string tests without case folding), each regex of ``searches``
    and each closure of ``others``; any other value (number, boolean, array) goes through
    ``fallback``, the OR of all of them on one scalar, element by element for arrays.
    """

    name: str
    cased: StringTests | None
    searches: tuple[re.Pattern[str], ...]
    others: tuple[Callable[[Any], bool], ...]
    fallback: Callable[[Any], bool] = field(repr=False)


@dataclass(frozen=True)
class Presence:
    """``field: null`` (``wanted`` False) and ``field|exists`` tests: present means set and not an empty array."""

    name: str
    wanted: bool


@dataclass(frozen=True)
class CallLeaf:
    """A construct the generator leaves to its closure (field references): called with the context."""

    predicate: Callable[[Any], bool] = field(repr=False)


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class AllOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Negation:
    item: Node


Node = TextLeaf | RawLeaf | Presence | CallLeaf | AnyOf | AllOf | Negation


def cost(node: Node) -> float:
    """A rough relative cost of evaluating ``node``, used to run cheap tests first."""
    if isinstance(node, TextLeaf):
        return 1 + _strings_cost(node.tests)
    if isinstance(node, RawLeaf):
        tests = node.cased
        return 2 + (_strings_cost(tests) if tests else 0) + 8 * len(node.searches) + 6 * len(node.others)
    if isinstance(node, Presence):
        return 1
    if isinstance(node, CallLeaf):
        return 30
    if isinstance(node, Negation):
        return cost(node.item)
    return sum(cost(item) for item in node.items)


def _strings_cost(tests: StringTests) -> float:
    return (
        (0.5 if tests.equal else 0)
        + (1 if tests.prefixes else 0)
        + (1 if tests.suffixes else 0)
        + 0.5 * len(tests.needles)
        + (10 if tests.regex is not None else 0)
    )


#: at most this many required texts are checked before a regex runs (longest first)
MAX_REQUIRED = 3
_REPEATS = (sre_parser.MAX_REPEAT, sre_parser.MIN_REPEAT, sre_parser.POSSESSIVE_REPEAT)


def required_texts(regex: re.Pattern[str]) -> tuple[str, ...]:
    """Literal texts every match of ``regex`` contains, longest first (none when nothing is certain).

    A run of consecutive literals is matched one character after the other by any match, and so
    is a run inside a group or inside a repetition of at least one; alternatives, optional parts,
    lookarounds and groups with their own flags are left out.  Under IGNORECASE only ASCII
    non-letters count, which re compares exactly.
    """
    runs: set[str] = set()
    _collect(sre_parser.parse(regex.pattern, regex.flags), bool(regex.flags & re.IGNORECASE), runs)
    return tuple(sorted(runs, key=lambda run: (-len(run), run))[:MAX_REQUIRED])


def _collect(items: Any, ignore_case: bool, runs: set[str]) -> None:
    run = ""
    for op, argument in items:
        if op is sre_parser.LITERAL:
            char = chr(argument)
            if not ignore_case or (char.isascii() and not char.isalpha()):
                run += char
                continue
        if run:
            runs.add(run)
            run = ""
        if op is sre_parser.SUBPATTERN:
            _group, add_flags, del_flags, inner = argument
            if not add_flags and not del_flags:
                _collect(inner, ignore_case, runs)
        elif op in _REPEATS:
            least, _most, inner = argument
            if least >= 1:
                _collect(inner, ignore_case, runs)
        elif op is sre_parser.ATOMIC_GROUP:
            _collect(argument, ignore_case, runs)
    if run:
        runs.add(run)


def _any_text(test: Callable[[str], bool], items: tuple[str, ...]) -> bool:
    """An array field matches when any element does."""
    for item in items:  # noqa: SIM110 -- a plain loop: no generator object per call
        if test(item):
            return True
    return False


def _any_raw(test: Callable[[Any], bool], value: Any) -> bool:
    """A raw value that is not text: absent never matches, arrays match by any element."""
    if value is None:
        return False
    if type(value) is tuple:
        for item in value:  # noqa: SIM110 -- as in _any_text
            if test(item):
                return True
        return False
    return test(value)


class _Writer:
    """Source of one predicate: constants get generated names, each field one local."""

    def __init__(self) -> None:
        self.namespace: dict[str, object] = {"_any_text": _any_text, "_any_raw": _any_raw, "tuple": tuple}
        self.prelude: list[str] = []
        self.uses: dict[tuple[str, str], int] = {}
        self.locals: dict[tuple[str, str], str] = {}
        self.fetched: set[tuple[str, str]] = set()

    def constant(self, value: object) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def count(self, node: Node) -> None:
        """Count field uses first, so a field used more than once is fetched once, up front."""
        if isinstance(node, (TextLeaf, RawLeaf, Presence)):
            key = ("lower" if isinstance(node, TextLeaf) else "raw", node.name)
            self.uses[key] = self.uses.get(key, 0) + 1
        elif isinstance(node, Negation):
            self.count(node.item)
        elif isinstance(node, (AnyOf, AllOf)):
            for item in node.items:
                self.count(item)

    def fetch(self, kind: str, name: str) -> tuple[str, str]:
        """(expression that loads the field into its local, the local's name)."""
        key = (kind, name)
        local = self.locals.get(key)
        if local is None:
            local = self.locals[key] = f"f{len(self.locals)}"
            if kind == "lower":
                load = f"ctx[{name!r}]"  # MatchContext is the per-event cache of lower-cased values
            elif name in RECORD_FIELDS:
                load = f"ctx.raw({name!r})"
            else:
                load = f"fields.get({name!r})"
            if self.uses[key] > 1:
                self.prelude.append(f"    {local} = {load}")
                self.fetched.add(key)
            else:
                return f"({local} := {load})", local
        return local, local

    def strings(self, tests: StringTests, text: str) -> str:
        """An expression true when the text held in local ``text`` matches ``tests``."""
        if tests.anything:
            return "True"
        parts: list[str] = []
        if len(tests.equal) == 1:
            (only,) = tests.equal
            parts.append(f"{text} == {only!r}")
        elif tests.equal:
            parts.append(f"{text} in {self.constant(tests.equal)}")
        for affixes, method in ((tests.prefixes, "startswith"), (tests.suffixes, "endswith")):
            if len(affixes) == 1:
                parts.append(f"{text}.{method}({affixes[0]!r})")
            elif affixes:
                parts.append(f"{text}.{method}({self.constant(affixes)})")
        parts += [f"{needle!r} in {text}" for needle in tests.needles]
        if tests.regex is not None:
            parts.append(self.regex(tests.regex.fullmatch, required_texts(tests.regex), text))
        return _join(parts, " or ", "False")

    def regex(self, method: Callable[[str], object], required: Sequence[str], text: str) -> str:
        """A regex call, run only when the texts every match contains are there."""
        return _join(
            [*(f"{literal!r} in {text}" for literal in required), f"{self.constant(method)}({text}) is not None"],
            " and ",
            "True",
        )

    def expression(self, node: Node) -> str:
        if isinstance(node, AnyOf):
            return _join([self.expression(item) for item in _by_cost(node.items)], " or ", "False")
        if isinstance(node, AllOf):
            # Negated operands are rule filters, which hold on nearly every event: they go last, so
            # the selective operands can end the conjunction first.
            items = sorted(node.items, key=lambda item: (isinstance(item, Negation), cost(item)))
            return _join([self.expression(item) for item in items], " and ", "True")
        if isinstance(node, Negation):
            return f"(not {self.expression(node.item)})"
        if isinstance(node, CallLeaf):
            return f"{self.constant(node.predicate)}(ctx)"
        if isinstance(node, Presence):
            load, local = self.fetch("raw", node.name)
            if node.wanted:
                return f"({load} is not None and {local} != ())"
            return f"({load} is None or {local} == ())"
        if isinstance(node, TextLeaf):
            load, local = self.fetch("lower", node.name)
            # lower-cased values are text, None (absent) or a tuple of texts (arrays)
            return (
                f"({load} is not None and ({self.strings(node.tests, local)} if {local}.__class__ is str"
                f" else _any_text({self.constant(node.fallback)}, {local})))"
            )
        load, local = self.fetch("raw", node.name)
        parts = [self.strings(node.cased, local)] if node.cased is not None else []
        parts += [self.regex(regex.search, required_texts(regex), local) for regex in node.searches]
        parts += [f"{self.constant(test)}({local})" for test in node.others]
        return (
            f"({_join(parts, ' or ', 'False')} if {load}.__class__ is str"
            f" else _any_raw({self.constant(node.fallback)}, {local}))"
        )


def _by_cost(items: Sequence[Node]) -> list[Node]:
    return sorted(items, key=cost)  # stable: equal costs keep the rule's order


def _join(parts: Sequence[str], glue: str, empty: str) -> str:
    if not parts:
        return empty
    return parts[0] if len(parts) == 1 else "(" + glue.join(parts) + ")"


def generate(tree: Node) -> Callable[[Any], bool]:
    """One compiled function ``predicate(ctx) -> bool`` evaluating ``tree`` on a MatchContext."""
    writer = _Writer()
    writer.count(tree)
    body = writer.expression(tree)
    lines = ["def predicate(ctx):"]
    if any(kind == "raw" and name not in RECORD_FIELDS for kind, name in writer.uses):
        lines.append("    fields = ctx.event.fields")
    lines += writer.prelude
    lines.append(f"    return {body}")
    source = "\n".join(lines) + "\n"
    namespace = dict(writer.namespace)
    # the source is built above from generated names and repr() of str literals only
    exec(compile(source, "<sigma predicate>", "exec"), namespace)  # noqa: S102
    predicate: Callable[[Any], bool] = namespace["predicate"]  # type: ignore[assignment]
    # field names interned: the objects events carry as keys, so each lookup is an identity check
    predicate.__code__ = interned_code(predicate.__code__)
    predicate.__doc__ = source  # what runs, for debugging
    return predicate
