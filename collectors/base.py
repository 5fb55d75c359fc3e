"""Parsers and raw records: the contract every collector module implements.

A parser turns one :class:`RawRecord` (a line, a datagram, a message) into
zero or more :class:`store.Event`.  It has exactly three ways to fail:

* :class:`NotMyFormat` -- the record is not this parser's format (try another);
* :class:`BadRecord` -- it is, but this record is broken (dead-letter it, go on);
* any other exception -- infrastructure is broken (raise).

A new parser is one subclass plus one :func:`register_parser` call at the
bottom of its module, and one import line in ``collectors/parsers/__init__.py``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from store.event import Event


class CollectorError(Exception):
    """Root of the collectors' errors."""


class NotMyFormat(CollectorError):
    """The record is not in this parser's format."""


#: why JSON nested deeper than Python's decoder goes (~1,000 levels; a hostile record can) is refused:
#: the decoder raises RecursionError, which each JSON reader turns into a bad record with this reason
NESTED_TOO_DEEP = "invalid JSON: arrays or objects nested deeper than the decoder reads"


class BadRecord(CollectorError):
    """The record is in this parser's format but cannot be used; the message says why."""


@dataclass(frozen=True, init=False)
class RawRecord:
    """One record as received, with where it came from (``received`` defaults to now)."""

    data: str
    source: str
    offset: str
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
    peer: str | None = None
    path: str | None = None

    def __init__(
        self,
        data: str,
        source: str,
        offset: str,
        received: datetime | None = None,
        peer: str | None = None,
        path: str | None = None,
    ) -> None:
        # written by hand (not the dataclass's): one dict update instead of a frozen __setattr__ per
        # attribute, about 3x faster -- a parse worker makes one per line
        self.__dict__.update(
            data=data,
            source=source,
            offset=offset,
            received=datetime.now(UTC) if received is None else received,
            peer=peer,
            path=path,
        )


class Parser(abc.ABC):
    """Turns raw records of one format into events."""

    #: registry name, e.g. ``syslog`` or ``camera.platform``
    name: ClassVar[str]
    #: ``event.dataset`` of the events it emits (may be refined per record)
    dataset: ClassVar[str]
    #: human description for ``citysoc ingest --list`` and docs/collectors.md
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def parse(self, record: RawRecord) -> list[Event]:
        """Parse one record; raise NotMyFormat or BadRecord as above."""


_PARSERS: dict[str, type[Parser]] = {}


def register_parser(cls: type[Parser]) -> type[Parser]:
    """Register a parser class by its ``name``; a duplicate name is an error."""
    name = getattr(cls, "name", None)
    if not name:
        raise CollectorError(f"parser {cls.__qualname__} has no name")
    if name in _PARSERS:
        raise CollectorError(
            f"parser name {name!r} is registered twice ({_PARSERS[name].__qualname__}, {cls.__qualname__})"
        )
    _PARSERS[name] = cls
    return cls


def get_parser(name: str) -> Parser:
    try:
        return _PARSERS[name]()
    except KeyError:
        known = ", ".join(sorted(_PARSERS))
        raise CollectorError(f"no parser named {name!r} (known: {known})") from None


def registered_parser(name: str) -> type[Parser] | None:
    """The parser class registered under ``name``, or None."""
    return _PARSERS.get(name)


def parsers() -> Iterator[type[Parser]]:
    yield from (_PARSERS[k] for k in sorted(_PARSERS))
