"""Field-anchor index over compiled rules, so an event is only evaluated against rules it can match.

Routing by logsource (:class:`detections.sigma.matcher.RuleSet`) leaves hundreds of Windows
process-creation rules for every Sysmon event.  :class:`AnchorIndex` narrows them further with
each rule's anchor clauses and exclusions (:mod:`detections.sigma.anchors`): a rule is a
candidate only when every one of its clauses has an anchor present in the event and none of
its exclusions is fully present.

Everything an event's anchors say is one Python int, the event's *hit mask* ``H``, so the set
algebra per event runs in C on machine words instead of in Python loops over (rule, clause)
pairs.  A bit stands for a (rule, clause) pair or for a distinct exclusion anchor; the least
selective ones (short substrings, found in most values) get the lowest bits, so the masks
OR-ed most often stay small ints.  One clause per rule is its *trigger*: its only clause, or
for a rule with several the most selective one (:func:`designated`).  Each (field, value)
maps to the mask of the bits its anchors set: equality anchors with one dict lookup, numeric
anchors with one dict lookup on the field's number, prefix / suffix / substring anchors with
one Aho-Corasick pass (the ``pyahocorasick`` automaton) over the lower-cased value, whose
prefix and suffix literals carry value marks so every match holds as reported (:func:`_marks`),
skipped when the value contains none of a few short substrings covering all the field's
literals (:func:`gram_cover`; what keeps the raw record, searched by keyword rules, cheap).
Values repeat all day (images, parents, users), so the masks of values seen are remembered
per field, keyed by the value as sent.  That per-event loop is compiled
(``detections/sigma/_hitmask.c``: the field lookups, the pre-check of new values, the automaton
pass and the OR into one buffer), with each field's automaton also compiled to a DFA that reads
ASCII values as sent (``_hitmask.Automaton``) and the value caches hashed with a fast keyed hash
(``_hitmask.ValueCache``); :meth:`AnchorIndex.hit_mask` and :meth:`AnchorIndex._value_mask` in
Python, with dict caches and the ``pyahocorasick`` automata, are its specification and run when
the module is not built (``tests/detections/sigma/test_hitmask.py`` holds them to the same
results).

The candidates are a function of ``H`` alone, and benign events give the same few ``H`` over
and over, so they are remembered per ``H`` (bounded).  On a miss: the rules whose trigger bit
is set, plus the rules without clauses; a multi-clause rule stays when all its clause bits are
set (``H & M == M``); any rule is dropped when all bits of one of its exclusions are set; the
rest is sorted into load order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import reduce
from operator import itemgetter, or_
from typing import Any, Protocol

import ahocorasick

from detections.sigma.anchors import Anchor, Clause, RuleAnchors


class _Cache(Protocol):
    """A field's value cache: a dict, or the compiled ``ValueCache`` (hashed with a fast keyed hash)."""

    def get(self, value: Any, /) -> int | None: ...
    def __setitem__(self, value: str, mask: int, /) -> None: ...
    def __len__(self) -> int: ...
    def clear(self) -> None: ...


_compiled: Callable[..., int | None] | None
_new_cache: Callable[[], _Cache]
try:  # the per-event loops compiled (detections/sigma/_hitmask.c); the same loops in Python otherwise
    from detections.sigma import _hitmask
except ImportError:  # pragma: no cover -- installed without a C compiler
    _compiled = None
    _new_cache = dict

    def route_key(fields: Mapping[str, Any], names: tuple[str, ...], /) -> tuple[Any, ...]:
        """The values of the named fields (None when absent): the key an event is routed by."""
        return tuple(map(fields.get, names))

else:
    _compiled = _hitmask.hit_mask
    _new_cache = _hitmask.ValueCache
    route_key = _hitmask.route_key

_second = itemgetter(1)

#: distinct values remembered per index: this many per field it looks at
SEEN_PER_FIELD = 4096
#: distinct hit masks whose candidates are remembered per index
SEEN_MASKS = 4096

#: a field's automaton gets a substring pre-check when this few short substrings cover all its literals
MAX_GRAMS = 3
#: ... and it has at most this many literals (the cover is searched at build time)
MAX_GRAM_LITERALS = 64

#: static selectivity of an anchor kind: an equality must match the whole value, a contains anywhere
_KIND_WEIGHT = {"eq": 3, "num": 3, "prefix": 2, "suffix": 1, "contains": 0}


#: candidates: (rule index, its predicate), in load order
_Entries = tuple[tuple[int, Callable[[Any], bool]], ...]


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


def implementation() -> str:
    """Which per-event loop runs: the compiled one or its Python specification."""
    if _compiled is None:
        return "Python (the C extension detections.sigma._hitmask is not built: no C compiler at install)"
    return "compiled (detections/sigma/_hitmask.c)"


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


def _indexable(anchor: Anchor) -> bool:
    """Whether the index can look the anchor up (an empty affix would hold on every value)."""
    _, kind, literal = anchor
    return kind in ("eq", "num") or bool(literal)


def clause_selectivity(clause: Clause) -> tuple[int, int, int]:
    """Higher is rarer in events: the weakest anchor decides (kind, then literal length), then fewer anchors.

    ``eq svchost.exe`` beats ``suffix .exe``; among suffixes ``\\\\wmic.exe`` beats ``.exe``.
    """
    weakest = min((_KIND_WEIGHT[kind], len(literal)) for _, kind, literal in clause)
    return (*weakest, -len(clause))


def gram_cover(literals: Iterable[str]) -> tuple[str, ...] | None:
    """A few substrings (2-4 characters) one of which every literal contains, or None when it takes more.

    A value that contains none of them contains no literal: one fast ``in`` per substring
    replaces the Aho-Corasick pass, which is what a long, unique value (the raw record searched
    by keyword rules) would cost on every event.  Greedy: the substring in most literals first,
    the longest among those.
    """
    remaining = set(literals)
    if not remaining or len(remaining) > MAX_GRAM_LITERALS or min(map(len, remaining)) < 2:
        return None
    grams = {t[i : i + n] for t in remaining for n in (2, 3, 4) for i in range(len(t) - n + 1)}
    chosen: list[str] = []
    while remaining:
        if len(chosen) == MAX_GRAMS:
            return None
        best = max(sorted(grams), key=lambda g: (sum(g in t for t in remaining), len(g)))
        chosen.append(best)
        remaining = {t for t in remaining if best not in t}
    return tuple(chosen)


#: characters a field's automaton may use as value-start / value-end marks and as their stand-in
_MARK_CANDIDATES = "\x02\x03\x1c\x1d\x1e\x1f\x01\x04\x05\x06\x0e\x0f\x10\x11\x12\x13\x14"


def _marks(literals: Iterable[str]) -> tuple[str, str, str]:
    """Three characters no literal contains: the value-start mark, the value-end mark, their stand-in.

    Prefix and suffix literals go into the field's automaton with a mark attached (``start +
    literal``, ``literal + end``) and values are searched as ``start + value + end``, so every
    match the automaton reports holds as it is and the masks are OR-ed in C, with no position
    checks in Python.  A value that itself contains a mark has it replaced by the stand-in,
    which no literal contains either, so no literal match appears or disappears.
    """
    used = set("".join(literals))
    free = [c for c in _MARK_CANDIDATES if c not in used]
    if len(free) < 3:
        raise ValueError(f"no free mark characters for literals {sorted(used)!r}")  # 17 control characters
    return free[0], free[1], free[2]


def _pairs(grams: tuple[str, ...] | None) -> bytes | None:
    """A 65,536-bit map of the grams' first two characters in every case, for the compiled pre-check.

    None unless every gram is ASCII (the compiled check reads values as they are sent, before
    lower-casing, so ``Ki`` and ``KI`` must find ``ki`` too).
    """
    if grams is None or not all(gram.isascii() and len(gram) >= 2 for gram in grams):
        return None
    bits = bytearray(8192)
    for gram in grams:
        for first in {gram[0], gram[0].upper()}:
            for second in {gram[1], gram[1].upper()}:
                pair = ord(first) << 8 | ord(second)
                bits[pair >> 3] |= 1 << (pair & 7)
    return bytes(bits)


def designated(clauses: Sequence[Clause]) -> int:
    """The position of the clause that triggers a multi-clause rule: the most selective one."""
    return max(range(len(clauses)), key=lambda number: clause_selectivity(clauses[number]))


class AnchorIndex:
    """The rules of one logsource set, indexed by anchor; :meth:`candidates` lists those to evaluate."""

    def __init__(self, rules: Sequence[IndexedRule]) -> None:
        self.rules = tuple(rules)
        # Slots get bits: every (rule, clause) pair and every distinct exclusion anchor.  The
        # least selective slots, whose anchors turn up in most values, get the lowest bits, so
        # the masks OR-ed per Aho-Corasick match and per field are mostly small ints.
        slots: list[tuple[tuple[int, int, int], int, Clause]] = []  # (selectivity, order, anchors)
        usable: dict[int, tuple[Clause, ...]] = {}
        clause_slots: dict[int, list[int]] = {}
        exclusions: dict[int, list[Clause]] = {}
        distinct: dict[Anchor, int] = {}  # exclusion anchor -> its slot, shared by all rules
        for index, rule in enumerate(self.rules):
            anchors = rule.anchors
            clauses = tuple(anchors or ())
            if clauses and all(_indexable(a) for clause in clauses for a in clause):
                usable[index] = clauses
                clause_slots[index] = list(range(len(slots), len(slots) + len(clauses)))
                slots += [(clause_selectivity(clause), len(slots) + n, clause) for n, clause in enumerate(clauses)]
            proofs = anchors.exclusions if isinstance(anchors, RuleAnchors) else ()
            kept = [c for c in proofs if all(_indexable(a) for a in c)]
            if kept:
                exclusions[index] = kept
                for anchor in (a for c in kept for a in c if a not in distinct):
                    distinct[anchor] = len(slots)
                    slots.append((clause_selectivity((anchor,)), len(slots), (anchor,)))
        position = {slot: bit for bit, (_, slot, _) in enumerate(sorted(slots))}
        bits: dict[Anchor, int] = {}  # anchor -> the bits it sets when present
        for _, slot, clause in slots:
            for anchor in clause:
                bits[anchor] = bits.get(anchor, 0) | 1 << position[slot]

        #: bit -> the rule it triggers (rules without clauses get a bit each above the slots)
        self._rule_of: dict[int, int] = {}
        #: rule -> all its clause bits (rules with several clauses)
        self._full: dict[int, int] = {}
        #: rule -> (bits any one of which excludes it, masks all bits of one of which exclude it)
        self._exclude: dict[int, tuple[int, tuple[int, ...]]] = {}
        triggers = always = clause_bits = 0
        next_bit = len(slots)
        for index in range(len(self.rules)):
            if index not in usable:
                self._rule_of[next_bit] = index
                always |= 1 << next_bit
                next_bit += 1
            else:
                own = clause_slots[index]
                trigger = position[own[designated(usable[index])]]
                self._rule_of[trigger] = index
                triggers |= 1 << trigger
                full = sum(1 << position[slot] for slot in own)
                clause_bits |= full
                if len(own) > 1:
                    self._full[index] = full
            single = 0
            several: list[int] = []
            for conjunction in exclusions.get(index, ()):
                mask = sum(1 << position[distinct[anchor]] for anchor in set(conjunction))
                if mask.bit_count() == 1:
                    single |= mask
                else:
                    several.append(mask)
            if single or several:
                self._exclude[index] = (single, tuple(several))
        self._triggers = triggers
        self._always_mask = always
        self.always: tuple[int, ...] = tuple(i for i in range(len(self.rules)) if i not in usable)
        #: the bits of (rule, clause) pairs, for counting hits
        self.clause_bits = clause_bits

        self._equal: dict[str, dict[str, int]] = {}
        self._numbers: dict[str, dict[float, int]] = {}
        affixes: dict[str, dict[str, list[int]]] = {}  # field -> literal -> [contains, suffix, prefix] bits
        for (name, kind, literal), mask in bits.items():
            if kind == "eq":
                equal = self._equal.setdefault(name, {})
                equal[literal] = equal.get(literal, 0) | mask
            elif kind == "num":
                numbers = self._numbers.setdefault(name, {})
                numbers[float(literal)] = numbers.get(float(literal), 0) | mask
            else:
                slot = ("contains", "suffix", "prefix").index(kind)
                affixes.setdefault(name, {}).setdefault(literal, [0, 0, 0])[slot] |= mask
        #: field -> (automaton, start mark, end mark, stand-in): see :meth:`_text_mask`
        self._automata: dict[str, tuple[Any, str, str, str]] = {}
        #: field -> substrings one of which a value must contain for the automaton to find anything
        self._grams: dict[str, tuple[str, ...]] = {}
        #: field -> its automaton compiled to a DFA (``_hitmask.Automaton``), when the extension is built
        self._dfas: dict[str, Any] = {}
        for name, literals in affixes.items():
            start, end, stand_in = _marks(literals)
            automaton = ahocorasick.Automaton()
            keys: dict[str, int] = {}  # a literal that is a prefix of one value and a suffix of another: two keys
            for literal, (contains, suffix, prefix) in literals.items():
                for key, mask in ((literal, contains), (literal + end, suffix), (start + literal, prefix)):
                    if mask:
                        keys[key] = keys.get(key, 0) | mask
            for key, mask in keys.items():
                automaton.add_word(key, mask)
            automaton.make_automaton()
            self._automata[name] = (automaton, start, end, stand_in)
            if _compiled is not None:  # the same keys as a DFA, for the compiled loop's ASCII values
                self._dfas[name] = _hitmask.Automaton(list(keys.items()), start, end, stand_in)
            grams = gram_cover(literals)
            if grams is not None:
                self._grams[name] = grams
        self.fields = tuple(sorted(set(self._equal) | set(self._automata)))
        self.number_fields = tuple(sorted(self._numbers))
        #: every field an anchor looks at
        self._looked_at = frozenset(self.fields) | frozenset(self.number_fields)
        #: no anchor on @timestamp / event.id, which live on the event record, not in its fields
        self._record_free = not self._looked_at & {"@timestamp", "event.id"}
        #: field -> {value as sent -> its mask}: images, parents, users and the like repeat all day,
        #: so most values are looked up once (text values only; bounded per field, cleared when full)
        self._seen: dict[str, _Cache] = {name: _new_cache() for name in sorted(self._looked_at)}
        #: equal masks share one object: many distinct values (command lines) hit the same anchors
        self._masks: dict[int, int] = {}
        self._masks_limit = SEEN_PER_FIELD * max(1, len(self._looked_at))
        #: what the compiled loop reads per field (layout in detections/sigma/_hitmask.c)
        self._tables: dict[str, tuple[Any, ...]] = {}
        for name, seen in self._seen.items():
            automaton, start, end, stand_in = self._automata.get(name) or (None, *_marks(()))
            grams = self._grams.get(name)
            # keyed by the interned name: events carry the same objects (store.event), so a lookup is an identity check
            in_c, dfa = name not in self._numbers, self._dfas.get(name)
            self._tables[sys.intern(name)] = (seen, self._equal.get(name), automaton, start, end, stand_in, grams,
                                              in_c, _pairs(grams), dfa)  # fmt: skip
        #: hit mask -> (rule index, predicate) of its candidates
        self._by_mask: dict[int, _Entries] = {}

    # ------------------------------------------------------------------ per event

    def _text_mask(self, name: str, text: str) -> int:
        """The bits set by one lower-cased text value of a field."""
        mask = 0
        equal = self._equal.get(name)
        if equal is not None:
            mask = equal.get(text, 0)
        searched = self._automata.get(name)
        if searched is not None and text:
            grams = self._grams.get(name)
            if grams is not None:
                for gram in grams:  # a plain loop: a generator would cost more than the searches
                    if gram in text:
                        break
                else:
                    return mask
            automaton, start, end, stand_in = searched
            if start in text or end in text:  # hostile or binary content: marks only where we put them
                text = text.replace(start, stand_in).replace(end, stand_in)
            # (end position, mask) per match; every match holds as reported (see _marks): OR in C
            mask = reduce(or_, map(_second, automaton.iter(start + text + end)), mask)
        return mask

    def _value_mask(self, ctx: _Context, name: str, raw: Any) -> int:
        """The bits set by one field's value: text anchors on its lower-cased text, numeric ones on its number."""
        mask = 0
        numbers = self._numbers.get(name)
        if type(raw) is str:
            mask = self._text_mask(name, raw.lower())
            if numbers is not None and (number := _number(raw)) is not None:
                mask |= numbers.get(number, 0)
            seen = self._seen[name]
            if len(seen) >= SEEN_PER_FIELD:
                seen.clear()
            if mask:
                masks = self._masks
                if len(masks) >= self._masks_limit:
                    masks.clear()
                mask = masks.setdefault(mask, mask)
            seen[raw] = mask  # keyed by the value as sent: a repeat is not even lower-cased
            return mask
        if name in self._equal or name in self._automata:
            value = ctx.lower(name)  # numbers, booleans, arrays: rare, not cached
            for text in value if isinstance(value, tuple) else (value,) if value is not None else ():
                mask |= self._text_mask(name, text)
        if numbers is not None:
            for item in raw if isinstance(raw, tuple) else (raw,) if raw is not None else ():
                number = _number(item)
                if number is not None:
                    mask |= numbers.get(number, 0)
        return mask

    def hit_mask(self, ctx: _Context) -> int:
        """``H``: the bits of every anchor present in the event."""
        seen = self._seen
        if not self._record_free:
            hits = 0
            for name, values in seen.items():
                raw = ctx.raw(name)
                if raw is not None:
                    mask = values.get(raw)
                    hits |= self._value_mask(ctx, name, raw) if mask is None else mask
            return hits
        fields = ctx.event.fields
        if _compiled is not None:  # the same loop in C (detections/sigma/_hitmask.c), for dict fields
            found = _compiled(
                fields, self._tables, self._value_mask, ctx, self._masks, SEEN_PER_FIELD, self._masks_limit
            )
            if found is not None:
                return found
        hits = 0
        for name in fields.keys() & seen.keys():  # a set intersection in C
            raw = fields[name]
            mask = seen[name].get(raw)
            hits |= self._value_mask(ctx, name, raw) if mask is None else mask
        return hits

    def _from_mask(self, hits: int) -> _Entries:
        """Candidates of a hit mask, in load order, with their predicates."""
        full, exclude, rules, rule_of = self._full, self._exclude, self.rules, self._rule_of
        out: list[tuple[int, Callable[[Any], bool]]] = []
        pending = hits & self._triggers | self._always_mask
        while pending:
            low = pending & -pending
            pending ^= low
            index = rule_of[low.bit_length() - 1]
            needed = full.get(index)
            if needed is not None and hits & needed != needed:
                continue
            excluded = exclude.get(index)
            if excluded is not None:
                single, several = excluded
                if hits & single or any(hits & mask == mask for mask in several):
                    continue
            out.append((index, rules[index].predicate))
        out.sort(key=itemgetter(0))  # bits follow selectivity, matches follow load order
        return tuple(out)

    def _remember(self, hits: int) -> _Entries:
        """The candidates of a hit mask met for the first time (since the memory was last cleared)."""
        if len(self._by_mask) >= SEEN_MASKS:
            self._by_mask.clear()
        entries = self._by_mask[hits] = self._from_mask(hits)
        return entries

    def _entries(self, ctx: _Context) -> _Entries:
        hits = self.hit_mask(ctx) if self._looked_at else 0
        entries = self._by_mask.get(hits)
        return self._remember(hits) if entries is None else entries

    def candidates(self, ctx: _Context) -> list[int]:
        """Indices (in load order) of the rules whose clauses all hold and no exclusion holds, plus unanchored ones."""
        return [index for index, _ in self._entries(ctx)]

    def match(self, ctx: _Context) -> list[int]:
        """Indices of the rules that match: candidates whose predicate holds."""
        return [index for index, predicate in self._entries(ctx) if predicate(ctx)]

    def matching(self, ctx: _Context) -> list[Any]:
        """The rules that match (the objects, in load order): :meth:`match` without the indices."""
        entries = self._entries(ctx)
        if not entries:  # most events: no candidate at all
            return []
        rules = self.rules
        return [rules[index] for index, predicate in entries if predicate(ctx)]
