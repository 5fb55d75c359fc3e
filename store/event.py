"""The one typed event record every collector emits.

An :class:`Event` is immutable.  Its fields are a flat mapping of dotted ECS
names (``source.ip``, ``ot.function``) to whitelisted simple values, validated
against :mod:`store.schema` when the event is built.  ``to_document`` gives the
nested ECS JSON form used for storage, export and the API.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import CodeType, MappingProxyType
from typing import Any, TypeVar

import orjson

from store.errors import EventValidationError
from store.schema import FIELDS, SCHEMA_VERSION, FieldSpec, FieldType, lookup

Scalar = str | int | float | bool
Value = Scalar | tuple[Scalar, ...]

_SCALARS = (str, int, float, bool)


def utc(ts: datetime) -> datetime:
    """``ts`` as an aware UTC datetime; naive values are taken as UTC."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc)


#: the last datetime formatted and its text: an event's time is formatted for its JSON and then at once
#: again for its index entry (the tuple holds the datetime, so its identity cannot be reused meanwhile)
_LAST_FORMATTED: tuple[datetime | None, str] = (None, "")


def format_ts(ts: datetime) -> str:
    """ISO 8601 with microseconds and ``Z``, sortable as text."""
    global _LAST_FORMATTED
    last = _LAST_FORMATTED
    if last[0] is ts:
        return last[1]
    given = ts
    if ts.tzinfo is not timezone.utc:
        ts = utc(ts)
    text = ts.isoformat(timespec="microseconds")[:-6] + "Z"  # isoformat is ~4x faster than strftime
    _LAST_FORMATTED = (given, text)  # one assignment: safe with threads
    return text


def parse_ts(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (``Z`` or offset); naive means UTC."""
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError as exc:
        raise EventValidationError(f"not an ISO 8601 timestamp: {text!r}") from exc


def stable_id(*parts: str) -> str:
    """A deterministic event id from provenance (source, offset) or content."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:32]


@functools.lru_cache(maxsize=65_536)  # addresses repeat heavily in telemetry
def _normal_ip(text: str) -> str:
    return str(ipaddress.ip_address(text))


@functools.lru_cache(maxsize=65_536)
def _doc_path(name: str) -> tuple[str, ...]:
    """Where a dotted field sits in the nested document (flattened sub-keys stay one key)."""
    if name == "@timestamp":
        return (name,)
    spec = lookup(name)
    if spec is not None and spec.type is FieldType.FLATTENED and spec.name != name:
        return (*spec.name.split("."), name[len(spec.name) + 1 :])
    return tuple(name.split("."))


#: where each declared field sits in the nested document, computed once
_DOC_PATHS: dict[str, tuple[str, ...]] = {name: tuple(name.split(".")) for name in FIELDS}

_Slot = tuple[str, str, tuple[str, ...]]


def _slot(parts: tuple[str, ...]) -> _Slot:
    """(parent path as one dotted key, leaf key, parent path) of a document path."""
    return ".".join(parts[:-1]), parts[-1], parts[:-1]


#: field -> its slot in the nested document (see :meth:`Event._document`)
_DOC_SLOTS: dict[str, _Slot] = {name: _slot(parts) for name, parts in _DOC_PATHS.items()}


@functools.lru_cache(maxsize=65_536)
def _doc_slot(name: str) -> _Slot:
    return _slot(_doc_path(name))


#: how to build the document of events with one list of field names (events of one source share it):
#: the objects to make, as (index of the parent object, key), then per field the index of its object
#: and its key; objects 0 and 1 are the document and its ``event`` object
_Plan = tuple[tuple[tuple[int, str], ...], tuple[int, ...], tuple[str, ...]]
_PLANS: dict[tuple[str, ...], _Plan | None] = {}
_PLAN_CACHE_SIZE = 4096
_S = TypeVar("_S")


def _per_shape(cache: dict[tuple[str, ...], _S], make: Callable[[tuple[str, ...]], _S], names: tuple[str, ...]) -> _S:
    """``make(names)``, remembered per list of field names (shapes come from parsers and enrichers: few,
    but the cache stays bounded)."""
    try:
        return cache[names]
    except KeyError:
        made = make(names)
        if len(cache) < _PLAN_CACHE_SIZE:
            cache[names] = made
        return made


_SEEN_ONCE: Any = object()  # a field list met once: generated code is made the second time, not the first
_NO_CODE: Any = object()  # make() refused the field list: the general path, without asking again


def shape_code(cache: dict[tuple[str, ...], Any], make: Callable[[tuple[str, ...]], _S | None],
               names: tuple[str, ...]) -> _S | None:
    """Generated code for a field list, from the second event with it on; None: take the general path.

    Making the code (``eval``) costs ~0.1 ms, so a field list met once (a one-off shape of free-form
    input) is not worth it, and once the cache is full no new code is made at all (the general path
    is always there and gives the same result): the cost stays bounded whatever the input's shapes.
    """
    made = cache.get(names)  # never None once stored: the code, _SEEN_ONCE or _NO_CODE
    if made is None:
        if len(cache) < _PLAN_CACHE_SIZE:
            cache[names] = _SEEN_ONCE
        return None
    if made is _SEEN_ONCE:
        made = cache[names] = make(names) or _NO_CODE
    return None if made is _NO_CODE else made


def _plan(names: tuple[str, ...]) -> _Plan | None:
    """The build plan of a field list, or None when a field's value sits where another field needs an
    object (``labels`` and ``labels.site``): such events take the general path, which keeps its behaviour."""
    index = {"": 0, "event": 1}
    leaves_at: set[str] = {"@timestamp", "event.id"}
    made: list[tuple[int, str]] = []
    parents: list[int] = []
    leaves: list[str] = []
    for name in names:
        parent, leaf, parts = _DOC_SLOTS.get(name) or _doc_slot(name)
        for depth in range(1, len(parts) + 1):
            key = ".".join(parts[:depth])
            if key in leaves_at:
                return None
            if key not in index:
                made.append((index[".".join(parts[: depth - 1])], parts[depth - 1]))
                index[key] = len(index)
        path = f"{parent}.{leaf}" if parent else leaf
        if path in index or path in leaves_at:
            return None
        leaves_at.add(path)
        parents.append(index[parent])
        leaves.append(leaf)
    return tuple(made), tuple(parents), tuple(leaves)


#: builds the JSON document of events with one list of field names, keys already in sorted order (the encoder
#: then need not sort): (values in field order, id, timestamp text, schema version) -> document
_Builder = Callable[[tuple[Value, ...], str, str, str], dict[str, Any]]
_BUILDERS: dict[tuple[str, ...], Any] = {}  # the builder, or shape_code's markers
#: top-level keys the document itself writes after the fields (a field under them takes the general path)
_RESERVED_ROOTS = frozenset({"ecs", "citysoc"})


def _builder(names: tuple[str, ...]) -> _Builder | None:
    """Generated code for one field list: a single dict display with every key in sorted order.

    ``orjson`` with ``OPT_SORT_KEYS`` sorts each object as it writes it, and building the nested
    objects one field at a time is most of ``to_json``'s cost; a generated expression builds
    them in one go, already sorted (code point order, which is also orjson's order).  Keys are
    written with ``repr`` (a string literal whatever they hold); values are read by position.
    None for the shapes :func:`_plan` refuses and for fields under ``ecs``/``citysoc``.
    """
    if _plan(names) is None:
        return None
    tree: dict[str, Any] = {"@timestamp": "t", "event": {"id": "i"}, "ecs": {"version": repr("8.11.0")},
                            "citysoc": {"schema_version": "s"}}  # fmt: skip
    for n, name in enumerate(names):
        _, leaf, parts = _DOC_SLOTS.get(name) or _doc_slot(name)
        if (parts or (leaf,))[0] in _RESERVED_ROOTS:
            return None
        node = tree
        for part in parts:
            node = node.setdefault(part, {})
        node[leaf] = f"v[{n}]"

    def display(node: dict[str, Any]) -> str:
        items = sorted(node.items())
        return "{" + ", ".join(f"{k!r}: {display(v) if isinstance(v, dict) else v}" for k, v in items) + "}"

    built: _Builder = eval(f"lambda v, i, t, s: {display(tree)}", {"__builtins__": {}})  # noqa: S307 -- keys by repr
    return built


def _check_scalar(name: str, ftype: FieldType, value: Any) -> Scalar:
    """The general (slow) path: every type rule with its error message naming the field."""
    if not isinstance(value, _SCALARS):
        raise EventValidationError(
            f"field {name!r}: value of type {type(value).__name__} is not allowed (strings, numbers and booleans only)"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise EventValidationError(f"field {name!r}: {value!r} is not a finite number")
    if ftype is FieldType.IP:
        try:
            return _normal_ip(str(value))
        except ValueError as exc:
            raise EventValidationError(f"field {name!r}: {value!r} is not an IP address") from exc
    if ftype is FieldType.LONG:
        if isinstance(value, bool):
            raise EventValidationError(f"field {name!r}: boolean given for an integer field")
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError as exc:
                raise EventValidationError(f"field {name!r}: {value!r} is not an integer") from exc
        if isinstance(value, float):
            if not value.is_integer():
                raise EventValidationError(f"field {name!r}: {value!r} is not an integer")
            return int(value)
        return value
    if ftype is FieldType.DOUBLE:
        if isinstance(value, bool):
            raise EventValidationError(f"field {name!r}: boolean given for a number field")
        try:
            number = float(value)
        except ValueError as exc:
            raise EventValidationError(f"field {name!r}: {value!r} is not a number") from exc
        if not math.isfinite(number):
            raise EventValidationError(f"field {name!r}: {value!r} is not a finite number")
        return number
    if ftype is FieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise EventValidationError(f"field {name!r}: {value!r} is not a boolean")
        return value
    if ftype is FieldType.DATE:
        if isinstance(value, str):
            return format_ts(parse_ts(value))
        raise EventValidationError(f"field {name!r}: dates are ISO 8601 strings")
    if ftype in (FieldType.KEYWORD, FieldType.TEXT):
        return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return value  # flattened sub-keys keep their simple type


# A timestamp already in the form format_ts writes (what collectors stamp): checked by
# fromisoformat below, not re-formatted.
_CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
#: dotted quads already seen to be canonical: addresses repeat heavily, and a set lookup costs a tenth
#: of the regex.  Bounded (the input names them); only ever holds text the regex accepted.
_CANONICAL_SEEN: set[str] = set()
_CANONICAL_SEEN_SIZE = 65_536


def _is_canonical_ipv4(value: str) -> bool:
    if value in _CANONICAL_SEEN:
        return True
    if _CANONICAL_IPV4.fullmatch(value):
        if len(_CANONICAL_SEEN) < _CANONICAL_SEEN_SIZE:
            _CANONICAL_SEEN.add(value)
        return True
    return False


_Check = Callable[[Any], Scalar]


def normal_ip(value: Any) -> str:
    """The canonical text of an IP address (as ``str(ipaddress.ip_address(value))``); ValueError if it is not one.

    A dotted quad without leading zeros is already canonical and is returned as it is; other
    text is normalised once and remembered (addresses repeat heavily in telemetry).
    """
    if type(value) is str:
        return value if _is_canonical_ipv4(value) else _normal_ip(value)
    return str(ipaddress.ip_address(value))


def _scalar_check(name: str, ftype: FieldType) -> _Check:
    """A compiled check for one field: an exact-type fast path for what parsers usually emit,
    falling back to :func:`_check_scalar` (same normalisation, same errors) for anything else."""

    def slow(value: Any) -> Scalar:
        return _check_scalar(name, ftype, value)

    if ftype in (FieldType.KEYWORD, FieldType.TEXT):

        def check_text(value: Any) -> Scalar:
            return value if type(value) is str else slow(value)

        return check_text
    if ftype is FieldType.LONG:

        def check_long(value: Any) -> Scalar:
            if type(value) is int:
                return value
            if type(value) is str and value.isdigit() and value.isascii():
                return int(value)  # what parsers read from text ("502"); the slow path gives the same int
            return slow(value)

        return check_long
    if ftype is FieldType.DOUBLE:

        def check_double(value: Any) -> Scalar:
            if type(value) is float and math.isfinite(value):
                return value
            if type(value) is int:
                return float(value)
            return slow(value)

        return check_double
    if ftype is FieldType.BOOLEAN:

        def check_bool(value: Any) -> Scalar:
            return value if type(value) is bool else slow(value)

        return check_bool
    if ftype is FieldType.IP:

        def check_ip(value: Any) -> Scalar:
            if type(value) is str:
                if _is_canonical_ipv4(value):
                    return value  # dotted quad without leading zeros: valid and already normal
                try:
                    return _normal_ip(value)
                except ValueError:
                    pass  # the slow path raises with the field name
            return slow(value)

        return check_ip
    if ftype is FieldType.DATE:

        def check_date(value: Any) -> Scalar:
            if type(value) is str and _CANONICAL_TS.fullmatch(value):
                try:
                    datetime.fromisoformat(value[:-1])  # a real date (no month 13)
                except ValueError:
                    pass
                else:
                    return value
            return slow(value)

        return check_date

    def check_flattened(value: Any) -> Scalar:
        return value if type(value) is str else slow(value)

    return check_flattened


_Validator = Callable[[Any], Value]


def _compile(name: str, spec: FieldSpec) -> _Validator:
    """The validator of one field: array handling around its scalar check."""
    check = _scalar_check(name, spec.type)
    is_array = spec.array
    lists_ok = is_array or spec.type is FieldType.FLATTENED

    def validate(value: Any) -> Value:
        if isinstance(value, (list, tuple)):
            if not lists_ok:
                raise EventValidationError(f"field {name!r} is not an array field")
            return tuple([check(item) for item in value])
        if is_array:
            return (check(value),)
        return check(value)

    return validate


#: declared field name -> compiled validator, built once at import
_VALIDATORS: dict[str, _Validator] = {name: _compile(name, spec) for name, spec in FIELDS.items()}


#: scalar field -> the exact value type that is valid and already normal for it (no conversion,
#: no range to check); Event() keeps such values without a call.  Doubles are absent (NaN check),
#: and so are IP and date fields (their text must be checked).
_PASS_UNCHANGED: dict[str, type] = {
    name: {FieldType.KEYWORD: str, FieldType.TEXT: str, FieldType.LONG: int, FieldType.BOOLEAN: bool}[spec.type]
    for name, spec in FIELDS.items()
    if not spec.array
    and spec.type in (FieldType.KEYWORD, FieldType.TEXT, FieldType.LONG, FieldType.BOOLEAN)
    and name not in ("@timestamp", "event.id")
}

#: array fields of text: a tuple of strings is valid and already normal for them (what parsers emit)
_TEXT_ARRAYS = frozenset(
    name for name, spec in FIELDS.items() if spec.array and spec.type in (FieldType.KEYWORD, FieldType.TEXT)
)

#: IP fields, single and array
_IP_FIELDS = frozenset(name for name, spec in FIELDS.items() if spec.type is FieldType.IP and not spec.array)
_IP_ARRAYS = frozenset(name for name, spec in FIELDS.items() if spec.type is FieldType.IP and spec.array)

_FLATTENED_VALIDATORS: dict[str, _Validator] = {}
_FLATTENED_CACHE_SIZE = 4096


def validate_field(name: str, value: Any) -> Value:
    """Check one field against the schema and return its normalised value."""
    validator = _VALIDATORS.get(name) or _FLATTENED_VALIDATORS.get(name)
    if validator is not None:
        return validator(value)
    spec = lookup(name)
    if spec is None:
        raise EventValidationError(f"unknown field {name!r} (not in the CitySOC event schema)")
    validator = _compile(name, spec)
    # flattened sub-keys (labels.source) are named by the input, so the cache is bounded
    if len(_FLATTENED_VALIDATORS) < _FLATTENED_CACHE_SIZE:
        _FLATTENED_VALIDATORS[name] = validator
        if spec.type is FieldType.FLATTENED and not spec.array:
            _PASS_UNCHANGED[name] = str  # a string is valid and normal there as it is (check_flattened)
    return validator(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: Any) -> Any:
    if type(value) is str:
        return _SURROGATE.sub("\ufffd", value)
    if type(value) is tuple:
        return tuple(_without_surrogates(item) for item in value)
    return value


def without_surrogates(event: Event) -> Event:
    """``event`` with every lone surrogate in its field names and text replaced by U+FFFD.

    Python text may hold lone surrogates (a JSON record can carry ``"\\udcff"``); UTF-8, and so
    SQLite and JSON files, cannot.  Same id and time: the event is the one that was received.
    """
    fields = {_without_surrogates(name): _without_surrogates(value) for name, value in event.fields.items()}
    return Event(event.id, event.timestamp, fields, event.schema_version)


#: prefix -> key -> the dotted name, interned, and name -> its prefix (``name + "."``): every event read
#: back from JSON names its fields with the same string objects, hashed once and identical to the names
#: detection indexes by (a lookup is an identity check).  Bounded: flattened fields' keys come from the input.
_NAMES: dict[str, dict[str, str]] = {}
_PREFIXES: dict[str, str] = {}
_NAMES_LIMIT = 50_000
_names_held = 0


def _dotted(prefix: str, key: str) -> str:
    """``prefix + key``, the same object each time while the cache has room."""
    global _names_held
    names = _NAMES.get(prefix)
    name = None if names is None else names.get(key)
    if name is None:
        name = f"{prefix}{key}"
        if _names_held < _NAMES_LIMIT:
            name = sys.intern(name)
            _NAMES.setdefault(prefix, {})[key] = name
            _PREFIXES.setdefault(name, name + ".")
            _names_held += 1
    return name


def flatten(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Flatten a nested ECS document into dotted names.

    Descends until the name is a declared field: a flattened field's object is
    expanded one key at a time, a declared scalar field is yielded as is.
    """
    for key, value in doc.items():
        name = _dotted(prefix, key)
        if isinstance(value, Mapping):
            spec = lookup(name)
            if spec is not None and spec.name == name and spec.type is not FieldType.FLATTENED:
                yield name, value  # rejected by validation with its name
            else:
                yield from flatten(value, _PREFIXES.get(name) or name + ".")
        else:
            yield name, value


#: what the embedded store indexes of an event (``store.sqlite_events.index_entry``): its timestamp text,
#: full-text body and posting keys ``(field, value, epoch second)``; computed once and kept on the event
IndexEntry = tuple[str, str, tuple[tuple[str, str, int], ...]]

#: an event as plain values (id, microseconds since the epoch, fields, schema version, its JSON and index
#: entry if computed): what parse workers send back, with marshal (see :meth:`Event.to_wire`)
Wire = tuple[str, int, dict[str, Value], str, str | None, IndexEntry | None]

#: an event for storing only (see :meth:`Event.to_stored_wire`): id, microseconds since the epoch, schema
#: version, its JSON, its index entry if computed, and its ``event.dataset`` and ``labels.source``
StoredWire = tuple[str, int, str, str, IndexEntry | None, Value | None, Value | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
#: the fields a stored-only event answers without reading its JSON (what storing and counting it read)
_CARRIED = ("event.dataset", "labels.source")
#: keys of the JSON document that are not fields
_NOT_FIELDS = ("@timestamp", "ecs", "citysoc")


def _fields_from_json(text: str) -> dict[str, Value]:
    """An event's fields read back from its :meth:`Event.to_json` text (arrays as tuples), without validation."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:  # what to_json wrote with the standard library (big integers, lone surrogates)
        doc = json.loads(text)
    for key in _NOT_FIELDS:
        doc.pop(key, None)
    doc["event"].pop("id", None)
    return {name: tuple(value) if type(value) is list else value for name, value in flatten(doc)}


class _StoredFields(Mapping[str, Value]):
    """The fields of an event that came from a parse worker for storing only (:meth:`Event.from_stored_wire`).

    ``event.dataset`` and ``labels.source`` came beside the JSON; any other field is read from the
    JSON at the first access (orjson, no validation: the worker validated the event).  Equal to the
    original fields; the order is the JSON's (sorted), not the parser's.
    """

    __slots__ = ("_carried", "_fields", "_text")

    def __init__(self, text: str, carried: dict[str, Value]) -> None:
        self._text = text
        self._carried = carried
        self._fields: dict[str, Value] | None = None

    def _all(self) -> dict[str, Value]:
        fields = self._fields
        if fields is None:
            fields = self._fields = _fields_from_json(self._text)
        return fields

    def get(self, key: str, default: Any = None) -> Any:
        if key in _CARRIED:
            return self._carried.get(key, default)
        return self._all().get(key, default)

    def __getitem__(self, key: str) -> Value:
        if key in _CARRIED:
            return self._carried[key]
        return self._all()[key]

    def __contains__(self, key: object) -> bool:
        if key in _CARRIED:
            return key in self._carried
        return key in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


def _from_stored_wire(wire: StoredWire) -> Event:
    event_id, micros, schema_version, text, index, dataset, source = wire
    event = object.__new__(Event)
    attributes = event.__dict__
    attributes["id"] = event_id
    attributes["timestamp"] = _EPOCH + timedelta(microseconds=micros)
    carried: dict[str, Value] = {}
    if dataset is not None:
        carried["event.dataset"] = dataset
    if source is not None:
        carried["labels.source"] = source
    attributes["fields"] = _StoredFields(text, carried)
    attributes["schema_version"] = schema_version
    attributes["_json"] = text
    if index is not None:
        attributes["_index"] = index
    return event


def _from_wire(wire: Wire) -> Event:
    event_id, micros, fields, schema_version, text, index = wire
    event = object.__new__(Event)
    # one dict update instead of a frozen-dataclass __setattr__ per attribute (this runs per event on the writer)
    attributes = event.__dict__
    attributes["id"] = event_id
    attributes["timestamp"] = _EPOCH + timedelta(microseconds=micros)
    attributes["fields"] = MappingProxyType(fields)
    attributes["schema_version"] = schema_version
    if text is not None:
        attributes["_json"] = text
    if index is not None:
        attributes["_index"] = index
    return event


_NO_FIELDS: Mapping[str, Value] = MappingProxyType({})


def plain_fields(fields: Mapping[str, Value]) -> dict[str, Value]:
    """A new dict of an event's fields: the proxied dict's own copy (``dict(proxy)`` goes key by key)."""
    return fields.copy() if type(fields) is MappingProxyType else dict(fields)

#: validates the values of one list of field names (in field order) into the event's field dict
_Validation = Callable[[tuple[Any, ...]], dict[str, Value]]
_VALIDATIONS: dict[tuple[str, ...], Any] = {}  # see shape_code


def _validation(names: tuple[str, ...]) -> _Validation | None:
    """Generated code for one field list: :meth:`Event.__init__`'s per-field loop, unrolled.

    One dict display, fields in order, each value kept when it is already of the exact type its
    field holds (the loop's fast paths, same tests) and otherwise given to the field's validator,
    which converts it or raises -- the first bad field in order raises, with the loop's message.
    None (the loop's "absent") is not handled here: the caller takes the loop for such values,
    and for field lists naming ``@timestamp``/``event.id`` or an unknown field (the loop's errors).
    """
    items: list[str] = []
    scope: dict[str, Any] = {"__builtins__": {}, "type": type, "str": str, "tuple": tuple, "int": int, "bool": bool}
    for n, name in enumerate(names):
        if type(name) is not str or name in ("@timestamp", "event.id"):
            return None
        validator = _VALIDATORS.get(name)
        kind = _PASS_UNCHANGED.get(name)
        if validator is None:  # a flattened sub-key (labels.site): validate_field's path
            spec = lookup(name)
            if spec is None:
                return None
            validator = functools.partial(validate_field, name)
            if spec.type is FieldType.FLATTENED and not spec.array:
                kind = str  # as check_flattened: a string is kept as it is
        scope[f"f{n}"] = validator
        if kind is not None:
            value = f"v[{n}] if type(v[{n}]) is {kind.__name__} else f{n}(v[{n}])"
        elif name in _TEXT_ARRAYS:
            value = f"v[{n}] if type(v[{n}]) is tuple and all([type(x) is str for x in v[{n}]]) else f{n}(v[{n}])"
        elif name in _IP_FIELDS:  # an address seen canonical before is kept as it is (as check_ip would)
            value = f"v[{n}] if type(v[{n}]) is str and v[{n}] in seen else f{n}(v[{n}])"
        elif name in _IP_ARRAYS:
            value = (f"v[{n}] if type(v[{n}]) is tuple and all([type(x) is str and x in seen for x in v[{n}]])"
                     f" else f{n}(v[{n}])")
        else:
            value = f"f{n}(v[{n}])"
        items.append(f"{name!r}: {value}")
    scope["all"] = all
    scope["seen"] = _CANONICAL_SEEN
    built: _Validation = eval(f"lambda v: {{{', '.join(items)}}}", scope)  # noqa: S307 -- names by repr
    # the field names it puts in each event are the interned ones, the objects detection indexes by
    built.__code__ = interned_code(built.__code__)
    return built


def interned_code(code: CodeType) -> CodeType:
    """``code`` with every string constant interned (field names in generated code: the objects events carry)."""
    return code.replace(co_consts=_interned(code.co_consts))


def _interned(constants: tuple[Any, ...]) -> tuple[Any, ...]:
    """Code constants with every string (also inside tuples: a dict display's keys) interned."""
    return tuple(
        sys.intern(item) if type(item) is str else _interned(item) if type(item) is tuple else item
        for item in constants
    )


@dataclass(frozen=True, init=False)
class Event:
    """One normalised, validated event."""

    id: str
    timestamp: datetime
    fields: Mapping[str, Value] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def __init__(
        self, id: str, timestamp: datetime, fields: Mapping[str, Value] = _NO_FIELDS,
        schema_version: str = SCHEMA_VERSION,
    ) -> None:
        # written by hand (not the dataclass's): one dict update per attribute instead of a frozen
        # __setattr__ each, and no __post_init__ call -- every parser builds one event per record
        if not id or not isinstance(id, str):
            raise EventValidationError("event id must be a non-empty string")
        attributes = self.__dict__
        attributes["id"] = id
        attributes["timestamp"] = timestamp if timestamp.tzinfo is timezone.utc else utc(timestamp)
        values = tuple(fields.values())
        if None not in values:  # None means absent: the loop below drops it
            validation = shape_code(_VALIDATIONS, _validation, tuple(fields))
            if validation is not None:
                attributes["fields"] = MappingProxyType(validation(values))
                attributes["schema_version"] = schema_version
                return
        clean: dict[str, Value] = {}
        validators = _VALIDATORS
        passing = _PASS_UNCHANGED
        text_arrays = _TEXT_ARRAYS
        for name, value in fields.items():
            if passing.get(name) is type(value):
                clean[name] = value  # already the exact type the field holds: nothing to check or convert
                continue
            if value is None or name == "@timestamp" or name == "event.id":
                continue  # None is absent; the id and timestamp are carried by the record itself
            if type(value) is tuple and name in text_arrays and all([type(item) is str for item in value]):
                clean[name] = value  # likewise, for ("network", "web") in event.category
                continue
            validator = validators.get(name)
            clean[name] = validator(value) if validator is not None else validate_field(name, value)
        attributes["fields"] = MappingProxyType(clean)
        attributes["schema_version"] = schema_version

    def get(self, name: str, default: Any = None) -> Any:
        """A field by dotted name; ``@timestamp`` and ``event.id`` included."""
        if name == "@timestamp":
            return format_ts(self.timestamp)
        if name == "event.id":
            return self.id
        return self.fields.get(name, default)

    def replace(self, **changes: Value | None) -> Event:
        """A new event with fields added, changed or (value ``None``) removed."""
        return self.with_fields(changes)

    def with_fields(self, values: Mapping[str, Value | None]) -> Event:
        """A new event with ``values`` added or changed (``None`` removes a field).

        Only the new values are validated: the existing ones were checked when
        this event was built, and events are immutable.
        """
        merged: dict[str, Value] = plain_fields(self.fields)
        passing = _PASS_UNCHANGED
        for name, value in values.items():
            if value is not None and passing.get(name) is type(value):
                merged[name] = value  # see __post_init__
            elif name == "@timestamp" or name == "event.id":
                continue
            elif value is None:
                merged.pop(name, None)
            else:
                merged[name] = validate_field(name, value)
        return self._validated(merged)

    def _validated(self, fields: dict[str, Value]) -> Event:
        clone = object.__new__(Event)
        attributes = clone.__dict__  # as in __init__: no frozen __setattr__ per attribute
        attributes["id"] = self.id
        attributes["timestamp"] = self.timestamp
        attributes["fields"] = MappingProxyType(fields)
        attributes["schema_version"] = self.schema_version
        return clone

    def flat(self) -> dict[str, Value]:
        """All fields, dotted, including ``@timestamp`` and ``event.id``."""
        out: dict[str, Value] = {"@timestamp": format_ts(self.timestamp), "event.id": self.id}
        out.update(self.fields)
        return out

    def to_document(self) -> dict[str, Any]:
        """Nested ECS JSON document."""
        return self._document(lists=True)

    def _document(self, lists: bool) -> dict[str, Any]:
        """The nested document; arrays as lists, or (``lists=False``, for the JSON encoders) as the tuples held."""
        event: dict[str, Any] = {"id": self.id}
        doc: dict[str, Any] = {"@timestamp": format_ts(self.timestamp), "event": event}
        # the object each parent path ("event", "source", "host.os") resolves to, made once per document
        nodes: dict[str, dict[str, Any]] = {"": doc, "event": event}
        slots = _DOC_SLOTS
        for name, value in self.fields.items():
            parent, leaf, parts = slots.get(name) or _doc_slot(name)
            node = nodes.get(parent)
            if node is None:
                node = doc
                for part in parts:
                    child = node.get(part)
                    node = child if child is not None else node.setdefault(part, {})
                nodes[parent] = node
            node[leaf] = list(value) if lists and type(value) is tuple else value
        doc.setdefault("ecs", {})["version"] = "8.11.0"
        doc["citysoc"] = {"schema_version": self.schema_version}
        return doc

    def _json_document(self) -> dict[str, Any]:
        """The document for the JSON encoders (key order free: they sort; tuples as they are: both write arrays)."""
        fields = self.fields
        plan = _per_shape(_PLANS, _plan, tuple(fields))
        if plan is None:
            return self._document(lists=False)
        made, parents, leaves = plan
        event: dict[str, Any] = {"id": self.id}
        doc: dict[str, Any] = {"@timestamp": format_ts(self.timestamp), "event": event}
        nodes: list[dict[str, Any]] = [doc, event]
        for parent, key in made:
            node: dict[str, Any] = {}
            nodes[parent][key] = node
            nodes.append(node)
        for parent, leaf, value in zip(parents, leaves, fields.values(), strict=True):
            nodes[parent][leaf] = value
        doc.setdefault("ecs", {})["version"] = "8.11.0"
        doc["citysoc"] = {"schema_version": self.schema_version}
        return doc

    def to_json(self) -> str:
        """The document as compact-enough, key-sorted JSON (orjson; the standard library for what it refuses).

        Computed once per event and kept (the event is immutable): a parse worker serialises the
        event on its core and the text travels with the event to the process that stores it.
        """
        text: str | None = self.__dict__.get("_json")
        if text is not None:
            return text
        fields = self.fields
        build = shape_code(_BUILDERS, _builder, tuple(fields))  # generated from a field list's second event on
        if build is not None:
            index = self.__dict__.get("_index")  # the store's index entry starts with the same text, if made first
            ts = index[0] if index is not None else format_ts(self.timestamp)
            doc = build(tuple(fields.values()), self.id, ts, self.schema_version)
            option = 0  # built in sorted order
        else:
            doc = self._json_document()
            option = orjson.OPT_SORT_KEYS
        try:
            text = orjson.dumps(doc, option=option).decode("utf-8")
        except orjson.JSONEncodeError:
            # integers beyond 64 bits and strings with lone surrogates: json handles both
            text = json.dumps(doc, sort_keys=True, ensure_ascii=False)
        object.__setattr__(self, "_json", text)  # a cache, not a field: not compared, not copied by with_fields
        return text

    def to_wire(self) -> Wire:
        """The event as plain values (marshal and pickle take them fast), its JSON and index entry once computed."""
        cached = self.__dict__
        return (
            self.id,
            (self.timestamp - _EPOCH) // _MICROSECOND,
            plain_fields(self.fields),
            self.schema_version,
            cached.get("_json"),
            cached.get("_index"),
        )

    def to_stored_wire(self) -> StoredWire:
        """The event for a process that only stores it (no enricher, no listener): its JSON instead of its fields.

        Marshals in about half the time of :meth:`to_wire`; :meth:`from_stored_wire` gives an event
        whose fields are read back from the JSON when something asks for them (but for
        ``event.dataset`` and ``labels.source``, carried beside it).
        """
        fields = self.fields
        return (
            self.id,
            (self.timestamp - _EPOCH) // _MICROSECOND,
            self.schema_version,
            self.to_json(),
            self.__dict__.get("_index"),
            fields.get("event.dataset"),
            fields.get("labels.source"),
        )

    @classmethod
    def from_stored_wire(cls, wire: StoredWire) -> Event:
        """The event :meth:`to_stored_wire` gave (from a process of ours: not validated again)."""
        return _from_stored_wire(wire)

    @classmethod
    def from_wire(cls, wire: Wire) -> Event:
        """The event :meth:`to_wire` gave, without validating it again.

        Only for values that came from :meth:`to_wire` in a process of ours (a parse worker):
        they were validated when that event was built.
        """
        return _from_wire(wire)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as :meth:`to_wire` (unpickling trusts its input, as pickle always does)."""
        return (_from_wire, (self.to_wire(),))

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Event:
        """Build an event from a nested (or dotted) ECS document."""
        body = dict(doc)
        body.pop("ecs", None)
        meta = body.pop("citysoc", None) or {}
        flat = dict(flatten(body))
        ts_raw = flat.pop("@timestamp", None)
        if not isinstance(ts_raw, str):
            raise EventValidationError("document has no '@timestamp' string")
        event_id = flat.pop("event.id", None)
        if not isinstance(event_id, str) or not event_id:
            event_id = stable_id(json.dumps(doc, sort_keys=True, default=str))
        version = meta.get("schema_version", SCHEMA_VERSION) if isinstance(meta, Mapping) else SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise EventValidationError(
                f"schema version {version!r} is not supported (this build reads {SCHEMA_VERSION})"
            )
        return cls(id=event_id, timestamp=parse_ts(ts_raw), fields=flat)

    @classmethod
    def from_json(cls, text: str) -> Event:
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            try:  # what orjson refuses and json reads (escaped lone surrogates), or the error message
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise EventValidationError(f"invalid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise EventValidationError("event JSON must be an object")
        return cls.from_document(doc)
