"""Helpers of the collector tests: sample files read the way the file collector reads them, and waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord
from store.errors import EventValidationError
from store.event import Event
from tests.helpers import REPO, T0

DATA = REPO / "tests" / "data" / "collectors"


def records(path: Path) -> list[RawRecord]:
    """One record per non-blank line, with byte offsets, as FileCollector makes them."""
    out: list[RawRecord] = []
    offset = 0
    with open(path, "rb") as fh:
        for raw in fh:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if text.strip():
                out.append(RawRecord(text, f"file:{path}", str(offset), received=T0, path=str(path)))
            offset += len(raw)
    return out


@dataclass
class Parsed:
    """What a parser made of a file: the events, and per bad record its offset and reason."""

    events: list[Event] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    not_mine: list[tuple[str, str]] = field(default_factory=list)
    silent: int = 0  # records that yield no event (Zeek header lines)


def parse_file(parser: Parser, path: Path) -> Parsed:
    result = Parsed()
    for record in records(path):
        try:
            events = parser.parse(record)
        except (BadRecord, EventValidationError) as exc:
            result.bad.append((record.offset, str(exc)))
            continue
        except NotMyFormat as exc:
            result.not_mine.append((record.offset, str(exc)))
            continue
        result.events.extend(events)
        result.silent += not events
    return result


def record(data: str, source: str = "test:unit", offset: str = "0", path: str | None = None) -> RawRecord:
    return RawRecord(data, source, offset, received=T0, path=path)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.01)
