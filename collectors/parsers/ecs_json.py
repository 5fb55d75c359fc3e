"""ECS JSON parser: lines that already are CitySOC/ECS event documents.

Other CitySOC instances, the ``citysoc export`` output and ECS-speaking
shippers write one nested (or dotted) ECS document per line; this parser turns
each back into an :class:`store.event.Event` with
:meth:`store.event.Event.from_document`, so the schema decides what is valid.

The module also holds :func:`load_json_object`, the JSON-lines reader every
JSON-based parser shares: it separates *not JSON at all* (NotMyFormat) from
*a broken JSON object* (BadRecord) and refuses ``NaN``/``Infinity``, which the
store cannot keep as JSON.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any, ClassVar

from collectors.base import NESTED_TOO_DEEP, BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from store.errors import EventValidationError
from store.event import Event


class _NonFinite(ValueError):
    """A JSON number that is NaN or infinite."""


def _reject_constant(name: str) -> Any:
    raise _NonFinite(f"{name} is not allowed in a number field")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(f"number {text} is out of range")
    return value


# json.loads with arguments builds a decoder (and its scanner) per call, ~2-3 us a record; these are
# built once (as json.loads' own default decoder is; a decoder keeps no state between documents)
_FLOATS = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)
_EXACT = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def load_json_object(line: str, *, exact_numbers: bool = False) -> dict[str, Any]:
    """The JSON object on one line.

    A line that does not start with ``{`` is NotMyFormat; an object that does
    not decode is BadRecord with the column of the error.  ``exact_numbers``
    gives fractions as :class:`~decimal.Decimal` (Zeek timestamps and
    durations keep their microseconds exactly).
    """
    text = line.strip().lstrip("\ufeff")
    if not text.startswith("{"):
        raise NotMyFormat("not a JSON object (the line does not start with '{')")
    try:
        value = (_EXACT if exact_numbers else _FLOATS).decode(text)
    except json.JSONDecodeError as exc:
        raise BadRecord(f"invalid JSON at column {exc.colno}: {exc.msg}") from exc
    except ValueError as exc:  # _NonFinite, or an integer longer than Python accepts
        raise BadRecord(f"invalid JSON: {exc}") from exc
    except RecursionError:  # a hostile record nesting arrays or objects deeper than the decoder goes
        raise BadRecord(NESTED_TOO_DEEP) from None
    if not isinstance(value, dict):
        raise BadRecord("invalid JSON: the line is not a single object")
    return value


class EcsJsonParser(Parser):
    """One ECS / CitySOC event document per line."""

    name: ClassVar[str] = "ecs.json"
    dataset: ClassVar[str] = "ecs.json"
    description: ClassVar[str] = "Lines that already are CitySOC/ECS JSON event documents (nested or dotted names)."

    def parse(self, record: RawRecord) -> list[Event]:
        doc = load_json_object(record.data)
        if "@timestamp" not in doc:
            raise NotMyFormat("JSON object without '@timestamp' is not an ECS document")
        try:
            event = Event.from_document(doc)
        except EventValidationError as exc:
            raise BadRecord(f"not a valid CitySOC event document: {exc}") from exc
        if "event.original" not in event.fields:
            event = event.with_fields({"event.original": record.data})
        return [event]


register_parser(EcsJsonParser)
