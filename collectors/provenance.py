"""The provenance stamp: who received a record, from where, at which offset and when, and the clock skew.

Used by :class:`collectors.pipeline.IngestPipeline` on its own thread and by the parse worker
processes (:mod:`collectors.parse_workers`), which stamp events on their core before sending them
back.  The constant part of a stamp (observer, agent, module, dataset, source, path) is validated
once per source and reused; the per-record values (receipt and ingest times, skew, offset) are
built here in their canonical form, so the stamp adds them without validating them again.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from collectors.base import Parser, RawRecord
from store.event import Event, Value, format_ts, plain_fields, validate_field

AGENT_VERSION = "0.1.0"

#: an event whose @timestamp is this many seconds after the collector received it comes
#: from a device clock that runs ahead (syslog stamps have one-second resolution)
FUTURE_TOLERANCE_SECONDS = 5.0
FUTURE_TAG = "clock_skew_future"

#: stamp fields every event gets, overriding what the parser set
_FIXED = ("observer.name", "observer.hostname", "agent.type", "agent.name", "agent.version", "labels.source")
#: stamp fields an event gets only when the parser did not set them
_DEFAULTS = ("event.module", "event.dataset", "event.kind", "log.file.path", "observer.type")


class _LastFormatted:
    """``format_ts`` remembering the last time it formatted: the events of a batch share one."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[datetime, str] | None = None

    def __call__(self, moment: datetime) -> str:
        last = self._last
        if last is not None and last[0] is moment:
            return last[1]
        text = format_ts(moment)
        self._last = (moment, text)
        return text


class Provenance:
    """Stamps events of one collector (``observer.name``/``agent.name`` = ``name``, on ``hostname``)."""

    def __init__(self, name: str, hostname: str) -> None:
        self.name = name
        self.hostname = hostname
        #: (parser name, dataset, source, path) -> (fixed fields, default fields), validated once
        self._stamps: dict[tuple[str, str, str, str | None], tuple[dict[str, Value], dict[str, Value]]] = {}
        # one ingest time per batch, one receipt time per block of lines (collectors.lines): each formatted once
        self._format_now = _LastFormatted()
        self._format_received = _LastFormatted()
        self._lock = threading.Lock()

    def _constant(self, record: RawRecord, parser: Parser) -> tuple[dict[str, Value], dict[str, Value]]:
        """The validated constant part of the stamp of ``record``'s source: (fixed fields, default fields)."""
        key = (parser.name, parser.dataset, record.source, record.path)
        stamp = self._stamps.get(key)
        if stamp is None:
            fields: dict[str, Value] = {
                "observer.name": self.name,
                "observer.hostname": self.hostname,
                "observer.type": record.source.split(":", 1)[0],
                "agent.type": "citysoc-collector",
                "agent.name": self.name,
                "agent.version": AGENT_VERSION,
                "event.module": parser.name,
                "event.dataset": parser.dataset,
                "event.kind": "event",
                "labels.source": record.source,
            }
            if record.path:
                fields["log.file.path"] = record.path
            valid = Event("stamp", record.received, fields).fields  # validated once, reused per record
            stamp = ({n: valid[n] for n in _FIXED}, {n: valid[n] for n in _DEFAULTS if n in valid})
            with self._lock:
                if len(self._stamps) < 10_000:  # sources are configured, but stay bounded anyway
                    self._stamps[key] = stamp
        return stamp

    def stamp(self, event: Event, record: RawRecord, parser: Parser, now: datetime | None = None) -> Event:
        """``event`` with its provenance (see :meth:`collectors.pipeline.IngestPipeline.provenance`)."""
        fixed, defaults = self._constant(record, parser)
        own = event.fields
        merged = plain_fields(own)
        merged.update(fixed)
        for name, value in defaults.items():
            if name not in own:
                merged[name] = value
        skew = (event.timestamp - record.received).total_seconds()
        # format_ts output and a float from two datetimes are valid as they are; the offset is
        # checked only when a transport hands over something other than text
        merged["event.created"] = self._format_received(record.received)
        merged["event.ingested"] = self._format_now(now or datetime.now(UTC))
        merged["event.skew_seconds"] = skew
        offset = record.offset
        if type(offset) is str:
            merged["labels.source_offset"] = offset
        elif offset is None:
            merged.pop("labels.source_offset", None)
        else:
            merged["labels.source_offset"] = validate_field("labels.source_offset", offset)
        if skew > FUTURE_TOLERANCE_SECONDS:
            tags = own.get("tags", ())
            if FUTURE_TAG not in tags:  # type: ignore[operator]
                merged["tags"] = (*tags, FUTURE_TAG)  # type: ignore[misc]
        return event._validated(merged)  # every value above is validated or built valid
