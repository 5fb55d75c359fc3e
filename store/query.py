"""The event query language: parse, validate against the schema, compile to SQL or Elasticsearch.

A KQL/Lucene-like language for analysts::

    source.ip:10.0.0.0/8 and event.action:"login failed" and not user.name:admin*
    destination.port:>=1024 or (ot.function:write* modbus)

* ``field:value`` -- exact match (keyword, ip, number, boolean, date); unquoted ``*`` is a
  wildcard; an IPv4 network (``10.0.0.0/8``) on an ip field matches its addresses;
  ``field:>=value`` (also ``>``, ``<``, ``<=``) compares; ``field:*`` means the field exists.
* ``"quoted text"`` -- a phrase anywhere in the event; a bare word is a word anywhere
  (``admin*`` a word prefix).
* ``and``, ``or``, ``not`` (any case) and parentheses; words side by side mean ``and``.

:func:`parse` gives an immutable AST (:class:`Match`, :class:`Text`, :class:`And`,
:class:`Or`, :class:`Not`); field names are checked against :mod:`store.schema` and values
converted to the field's type, so a mistake is reported with its column before any query
runs.  :func:`to_sql` compiles the AST for the embedded store's ``events`` table and
:func:`to_elastic` to the query DSL.  Query text never reaches SQL: every value is a
bound parameter and every SQL fragment comes from this module.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from store.errors import StoreError
from store.event import format_ts, parse_ts
from store.schema import FIELDS, FieldType, lookup

MAX_QUERY_LENGTH = 4_000
MAX_DEPTH = 32
#: IPv4 networks longer than this many addresses per octet step are matched by prefix patterns
MAX_CIDR_PATTERNS = 256

Scalar = str | int | float | bool


class QueryError(StoreError, ValueError):
    """A query that cannot be parsed or does not fit the schema; names the column (1-based)."""

    def __init__(self, message: str, column: int | None = None) -> None:
        where = f"query column {column}: " if column is not None else "query: "
        super().__init__(where + message)
        self.reason = message
        self.column = column


# the AST -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """A condition on one field.

    ``op`` is ``=`` (exact), ``wildcard`` (``*`` in the value), ``cidr`` (IPv4 network),
    ``exists`` or one of ``>``, ``>=``, ``<``, ``<=``.
    """

    field: str
    op: str
    value: Scalar | None = None


@dataclass(frozen=True)
class Text:
    """Free text anywhere in the event: a word, a word prefix (``prefix``) or a phrase."""

    value: str
    phrase: bool = False
    prefix: bool = False


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Match | Text | And | Or | Not

_COMPARISONS = (">=", "<=", ">", "<")
_FIELD = re.compile(r"[A-Za-z@_][A-Za-z0-9_.@-]*")
_KEYWORDS = {"and", "or", "not"}


# the lexer -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "word" "phrase" "field"
    text: str
    pos: int  # 0-based offset in the query
    quoted_value: bool = False  # a field token whose value was quoted


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The string starting at the quote at ``start`` (``\\"`` and ``\\\\`` escape) and the offset after it."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise QueryError("the quoted string is not closed (add a closing \")", start + 1)


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            out.append(_Token(ch, ch, i))
            i += 1
        elif ch == '"':
            value, i2 = _read_quoted(text, i)
            out.append(_Token("phrase", value, i))
            i = i2
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in '()"':
                i += 1
            word = text[start:i]
            name, colon, rest = word.partition(":")
            if colon and _FIELD.fullmatch(name):
                if rest:
                    out.append(_Token("field", f"{name}:{rest}", start))
                elif i < len(text) and text[i] == '"':
                    value, i = _read_quoted(text, i)
                    out.append(_Token("field", f"{name}:{value}", start, quoted_value=True))
                else:
                    raise QueryError(f"expected a value after {name + ':'!r}", start + 1)
            else:
                out.append(_Token("word", word, start))
    return out


# the parser --------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, name: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == name:
            self.i += 1
            return True
        return False

    def parse(self) -> Node | None:
        if not self.tokens:
            return None
        node = self.or_expr()
        token = self.peek()
        if token is not None:
            raise QueryError(f"unexpected {token.text!r} (unbalanced parenthesis?)", token.pos + 1)
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while True:
            if self.keyword("and"):
                items.append(self.not_expr())
                continue
            token = self.peek()
            if token is None or token.kind == ")" or (token.kind == "word" and token.text.lower() == "or"):
                break
            items.append(self.not_expr())  # words side by side: and
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.keyword("not"):
            return Not(self.not_expr())
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise QueryError("the query ends where a condition was expected", None)
        self.i += 1
        if token.kind == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QueryError(f"more than {MAX_DEPTH} nested parentheses", token.pos + 1)
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != ")":
                raise QueryError("the parenthesis is not closed", token.pos + 1)
            self.i += 1
            self.depth -= 1
            return node
        if token.kind == ")":
            raise QueryError("')' without a matching '('", token.pos + 1)
        if token.kind == "phrase":
            if not token.text.strip():
                raise QueryError("an empty phrase matches nothing", token.pos + 1)
            return Text(token.text, phrase=True)
        if token.kind == "field":
            name, _, value = token.text.partition(":")
            return field_match(name, value, token.quoted_value, token.pos + 1)
        if token.text.lower() in _KEYWORDS:
            raise QueryError(f"{token.text!r} needs a condition on each side", token.pos + 1)
        word = token.text
        if "*" in word.rstrip("*") or word.strip("*") == "":
            raise QueryError(f"{word!r}: free-text wildcards are word prefixes only (e.g. admin*)", token.pos + 1)
        if word.endswith("*"):
            return Text(word.rstrip("*"), prefix=True)
        return Text(word)


def parse(text: str | None) -> Node | None:
    """The AST of a query; None for an empty query (everything)."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"the query is {len(text)} characters long; at most {MAX_QUERY_LENGTH}")
    return _Parser(text).parse()


# values -----------------------------------------------------------------------------------------
def _typed(name: str, ftype: FieldType, raw: str, column: int) -> Scalar:
    """``raw`` converted to the field's type (what the store holds), or a QueryError."""
    try:
        if ftype is FieldType.LONG:
            return int(raw)
        if ftype is FieldType.DOUBLE:
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError(raw)
            return number
        if ftype is FieldType.BOOLEAN:
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if ftype is FieldType.IP:
            return str(ipaddress.ip_address(raw))
        if ftype is FieldType.DATE:
            return format_ts(parse_ts(raw))
    except (ValueError, StoreError):
        raise QueryError(f"{name}: {raw!r} is not a valid {ftype.value} value", column) from None
    return raw


def field_match(name: str, raw: str, quoted: bool, column: int) -> Match:
    """The condition ``name:raw``, checked against the schema."""
    if name == "event.id":
        ftype = FieldType.KEYWORD
    else:
        spec = lookup(name)
        if spec is None:
            raise QueryError(f"unknown field {name!r} (see docs/schema.md for the event fields)", column)
        if spec.type is FieldType.FLATTENED and spec.name == name:
            raise QueryError(f"{name!r} holds key/value pairs: query one key, e.g. {name}.<key>:value", column)
        ftype = FieldType.KEYWORD if spec.type is FieldType.FLATTENED else spec.type
    if not quoted and raw == "*":
        return Match(name, "exists")
    if not quoted:
        for op in _COMPARISONS:
            if raw.startswith(op):
                value = raw[len(op) :]
                if not value:
                    raise QueryError(f"{name}: expected a value after {op!r}", column)
                return Match(name, op, _typed(name, ftype, value, column))
    if not quoted and "*" in raw:
        if ftype not in (FieldType.KEYWORD, FieldType.TEXT):
            hint = " (use a network such as 10.0.0.0/8)" if ftype is FieldType.IP else ""
            raise QueryError(f"{name}: wildcards work on text and keyword fields only{hint}", column)
        return Match(name, "wildcard", raw)
    if ftype is FieldType.IP and "/" in raw:
        try:
            network = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise QueryError(f"{name}: {raw!r} is not an IP network", column) from None
        if network.version != 4:
            raise QueryError(f"{name}: IPv6 networks are not supported yet; give an address", column)
        return Match(name, "cidr", str(network))
    return Match(name, "=", _typed(name, ftype, raw, column))


def fields_of(node: Node | None) -> set[str]:
    """The field names a query mentions (for pivots and column choice)."""
    if node is None or isinstance(node, Text):
        return set()
    if isinstance(node, Match):
        return {node.field}
    if isinstance(node, Not):
        return fields_of(node.item)
    return set().union(*(fields_of(item) for item in node.items))


def quote_value(value: Any) -> str:
    """A value written so that :func:`parse` reads it back exactly (for pivot links)."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def term(name: str, value: Any) -> str:
    """The query ``name:"value"`` (pivot from a field value)."""
    return f"{name}:{quote_value(value)}"


# SQL for the embedded store ------------------------------------------------------------------------
def json_path(name: str) -> str:
    """The JSON path of a dotted field in the stored nested document."""
    spec = lookup(name)
    if spec is not None and spec.type is FieldType.FLATTENED and spec.name != name:
        parts = [*spec.name.split("."), name[len(spec.name) + 1 :]]
    else:
        parts = name.split(".") if name != "@timestamp" else [name]
    return "$" + "".join('."' + p.replace('"', '""') + '"' for p in parts)


def _glob(value: str) -> str:
    """A GLOB pattern: ``*`` stays a wildcard, every other GLOB metacharacter is literal."""
    return "".join("[" + ch + "]" if ch in "?[]" else ch for ch in value)


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped.replace("*", "%") + "%"


def _fts_word(word: str, prefix: bool = False) -> str:
    return '"' + word.replace('"', '""') + '"' + ("*" if prefix else "")


def _cidr_prefixes(network: str) -> list[str]:
    """GLOB prefixes covering an IPv4 network (``10.0.0.0/9`` -> ``10.0.*`` ... ``10.127.*``)."""
    net = ipaddress.IPv4Network(network)
    if net.prefixlen == 0:
        return ["*"]
    octets = math.ceil(net.prefixlen / 8)
    step = 2 ** (32 - octets * 8)
    count = net.num_addresses // step
    if count > MAX_CIDR_PATTERNS:  # cannot happen for IPv4 (at most 2**7), kept as a guard
        raise QueryError(f"network {network} is too wide to match by prefix")
    base = int(net.network_address)
    out = []
    for k in range(count):
        parts = str(ipaddress.IPv4Address(base + k * step)).split(".")[:octets]
        out.append(".".join(parts) + ("." + "*" if octets < 4 else ""))
    return out


@dataclass(frozen=True)
class SQLQuery:
    """A WHERE fragment over ``events e`` and its bound parameters."""

    where: str
    params: tuple[Any, ...]


@dataclass(frozen=True)
class _Terms:
    """Fields indexed in ``event_terms`` and the search window in whole seconds (bounds the term lookups)."""

    fields: frozenset[str]
    start: int | None
    end: int | None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)
_FTS = "e.rid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"


def _second(at: datetime | None) -> int | None:
    """Whole seconds since 1970, rounded down (also before 1970): the ``event_terms.epoch`` scale."""
    return None if at is None else (at - _EPOCH) // _SECOND


def to_sql(
    node: Node | None,
    term_fields: frozenset[str] | set[str] | tuple[str, ...],
    start: datetime | None = None,
    end: datetime | None = None,
) -> SQLQuery:
    """Compile for the embedded store: ``term_fields`` are the fields indexed in ``event_terms``.

    ``start``/``end`` (the search window) bound the ``event_terms`` lookups by their ``epoch``
    column (whole seconds, so the bound is a superset: the caller checks ``e.ts`` against the
    exact window), so a common value costs what its occurrences in the window cost, not all of them.
    ``event.dataset`` is the ``events.dataset`` column.
    """
    params: list[Any] = []
    if node is None:
        return SQLQuery("1", ())
    terms = _Terms(frozenset(term_fields), _second(start), _second(end))
    sql = _sql(node, params, terms)
    return SQLQuery(sql, tuple(params))


def _sql(node: Node, params: list[Any], terms: _Terms) -> str:
    if isinstance(node, And):
        # the free-text words of an "and" go to the full-text index as one query (its implicit AND):
        # one posting-list intersection instead of one id set per word
        texts = [item for item in node.items if isinstance(item, Text)]
        parts = [_sql(item, params, terms) for item in node.items if not isinstance(item, Text)]
        if texts:  # appended after the others: placeholders and parameters stay in the same order
            params.append(" ".join(_fts_word(t.value, t.prefix) for t in texts))
            parts.append(_FTS)
        return "(" + " AND ".join(parts) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_sql(item, params, terms) for item in node.items) + ")"
    if isinstance(node, Not):
        return "(NOT " + _sql(node.item, params, terms) + ")"
    if isinstance(node, Text):
        params.append(_fts_word(node.value, node.prefix))
        return _FTS
    return _sql_match(node, params, terms)


def _window(terms: _Terms, params: list[Any]) -> str:
    out = ""
    if terms.start is not None:
        out += " AND t.epoch >= ?"
        params.append(terms.start)
    if terms.end is not None:
        out += " AND t.epoch <= ?"  # an event at end - 0.5 s has the epoch second of end
        params.append(terms.end)
    return out


def _sql_match(m: Match, params: list[Any], terms: _Terms) -> str:
    if m.field == "@timestamp":
        if m.op in ("wildcard", "cidr"):
            raise QueryError("@timestamp: use a comparison such as @timestamp:>=2026-11-21T08:00:00Z")
        if m.op == "exists":
            return "1"
        params.append(m.value)
        return f"e.ts {'=' if m.op == '=' else m.op} ?"
    if m.field == "event.id":
        if m.op == "exists":
            return "1"
        params.append(_glob(str(m.value)) if m.op == "wildcard" else m.value)
        return {"wildcard": "e.id GLOB ?", "=": "e.id = ?"}.get(m.op, f"e.id {m.op} ?")
    if m.field == "event.dataset":  # a column of events, indexed with the time: (dataset, ts)
        if m.op == "exists":
            return "e.dataset IS NOT NULL"
        params.append(_glob(str(m.value)) if m.op == "wildcard" else m.value)
        return {"wildcard": "e.dataset GLOB ?", "=": "e.dataset = ?"}.get(m.op, f"e.dataset {m.op} ?")
    if m.field in terms.fields:
        # one index (field, value, epoch, rid): each form is an index range, cut to the window; a posting
        # row lists its events as offsets from its rid (store.sqlite_events.Postings)
        sub = "e.rid IN (SELECT t.rid + j.value FROM event_terms t, json_each(t.more) j WHERE t.field = ?"
        params.append(m.field)
        if m.op == "exists":
            return sub + _window(terms, params) + ")"
        if m.op == "cidr":
            patterns = _cidr_prefixes(str(m.value))
            params.extend(patterns)
            globs = " OR ".join(["t.value GLOB ?"] * len(patterns))
            return sub + " AND (" + globs + ")" + _window(terms, params) + ")"
        if m.op == "wildcard":
            params.append(_glob(str(m.value)))
            return sub + " AND t.value GLOB ?" + _window(terms, params) + ")"
        params.append(str(m.value))
        return sub + f" AND t.value {m.op} ?" + _window(terms, params) + ")"
    spec = FIELDS.get(m.field) or lookup(m.field)
    path = json_path(m.field)
    if m.op == "exists":
        params.append(path)
        return "json_type(e.doc, ?) IS NOT NULL"
    if spec is not None and spec.type is FieldType.TEXT:
        # narrow by the full-text index, then check the field itself (case-insensitive contains)
        parts = []
        if m.op == "=":
            words = re.findall(r"\w+", str(m.value))
            fts = _fts_word(" ".join(words)) if words else ""  # the value's words as a phrase (match_phrase)
        else:
            # wildcard: each word that starts a pattern piece narrows as a prefix ("gate*" -> gate...);
            # a word after a * ("*way") can be the end of any token, so it cannot narrow
            words = [w for star, w in re.findall(r"(\*?)(\w+)", str(m.value)) if not star]
            fts = " ".join(_fts_word(w, prefix=True) for w in words)
        if fts and m.op in ("=", "wildcard"):
            params.append(fts)
            parts.append(_FTS)
        params.append(path)
        if m.op in ("=", "wildcard"):
            params.append(_like(str(m.value)))
            parts.append("EXISTS (SELECT 1 FROM json_each(e.doc, ?) j WHERE j.value LIKE ? ESCAPE '\\')")
        else:
            params.append(m.value)
            parts.append(f"EXISTS (SELECT 1 FROM json_each(e.doc, ?) j WHERE j.value {m.op} ?)")  # noqa: S608
        return "(" + " AND ".join(parts) + ")"
    params.append(path)
    if m.op == "wildcard":
        params.append(_glob(str(m.value)))
        return "EXISTS (SELECT 1 FROM json_each(e.doc, ?) j WHERE j.value GLOB ?)"
    if m.op == "cidr":
        patterns = _cidr_prefixes(str(m.value))
        params.extend(patterns)
        globs = " OR ".join(["j.value GLOB ?"] * len(patterns))
        return f"EXISTS (SELECT 1 FROM json_each(e.doc, ?) j WHERE {globs})"  # noqa: S608 - placeholders only
    value: Any = int(m.value) if isinstance(m.value, bool) else m.value  # JSON true reads as 1 in SQL
    params.append(value)
    return f"EXISTS (SELECT 1 FROM json_each(e.doc, ?) j WHERE j.value {m.op} ?)"  # noqa: S608 - op is one of _OPS


# Elasticsearch / OpenSearch query DSL ------------------------------------------------------------------
_ES_RANGE = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def to_elastic(node: Node | None) -> dict[str, Any]:
    """Compile to a query DSL clause over the events index (ECS field names are the mapping's names)."""
    if node is None:
        return {"match_all": {}}
    return _es(node)


def _es(node: Node) -> dict[str, Any]:
    if isinstance(node, And):
        return {"bool": {"filter": [_es(item) for item in node.items]}}
    if isinstance(node, Or):
        return {"bool": {"should": [_es(item) for item in node.items], "minimum_should_match": 1}}
    if isinstance(node, Not):
        return {"bool": {"must_not": [_es(node.item)]}}
    if isinstance(node, Text):
        if node.phrase:
            return {"multi_match": {"query": node.value, "type": "phrase", "lenient": True}}
        # only the prefix operator is enabled: the text is never query syntax
        text = node.value + ("*" if node.prefix else "")
        return {"simple_query_string": {"query": text, "flags": "PREFIX" if node.prefix else "NONE",
                                        "lenient": True}}  # fmt: skip
    return _es_match(node)


def _es_match(m: Match) -> dict[str, Any]:
    name = "_id" if m.field == "event.id" else m.field
    spec = lookup(m.field)
    is_text = spec is not None and spec.type is FieldType.TEXT
    if m.op == "exists":
        return {"match_all": {}} if name == "_id" else {"exists": {"field": name}}
    if m.op == "wildcard":
        return {"wildcard": {name: {"value": str(m.value), "case_insensitive": is_text}}}
    if m.op == "cidr":
        return {"term": {name: str(m.value)}}  # ip fields take a CIDR in a term query
    if m.op in _ES_RANGE:
        return {"range": {name: {_ES_RANGE[m.op]: m.value}}}
    if name == "_id":
        return {"ids": {"values": [str(m.value)]}}
    if is_text:
        return {"match_phrase": {name: str(m.value)}}
    return {"term": {name: m.value}}


def describe_range(start: datetime | None, end: datetime | None) -> str:
    """Human text for a time range (used in exports and page headings)."""
    if start is None and end is None:
        return "all time"
    return f"{format_ts(start) if start else 'the beginning'} to {format_ts(end) if end else 'now'}"
