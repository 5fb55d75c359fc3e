"""SCADA historian tag exports: CSV with a timestamp column and one column per tag (BATADAL, HAI style).

::

    DATETIME,L_T1,L_T2,F_PU1,S_PU1,...,ATT_FLAG
    04/07/16 00,2.44,5.24,93.63,1,...,0

**One event per tag value** (``event.kind: metric``, ``ot.tag.name``,
``ot.tag.value``): a row of 43 tags gives 43 events.  Long form is what the
schema, Sigma rules (``ot.tag.name: L_T1`` and ``ot.tag.value|gt: 6``) and the
per-tag baselines of the anomaly models need; a row-wide event would need a
field per tag.  The events of a row share the row's offset (``labels.source_offset``,
stamped by the pipeline) and their ids derive from source, offset and tag, so
re-reading the file gives the same ids.  ``event.original`` is not kept: the
row would be copied into every one of its events.

The first line must be the header; its first column is the time (named one of
:data:`TIME_COLUMNS`).  Like Zeek TSV the header is remembered per record
source, and read back from the file when a collector resumes mid-file.
Columns named as in :data:`LABEL_COLUMN` (``ATT_FLAG``, ``attack``,
``attack_P1`` ...) are dataset labels, not tags: they go to ``labels.<name>``
of every event of the row.  An empty cell is a missing sample (no event).

Times are tried in the formats of :data:`TIME_FORMATS`: ISO 8601 first, then
day-first ``dd/mm/yy HH`` (BATADAL) and its longer variants.  Historians
export local time without an offset; naive times are taken as UTC and
``event.timezone`` is not set -- a collector for a site in another zone must
convert before ingest.
"""

from __future__ import annotations

import csv
import math
import re
import threading
from datetime import datetime
from typing import ClassVar

from collectors.base import BadRecord, NotMyFormat, Parser, RawRecord, register_parser
from store.errors import EventValidationError
from store.event import Event, Value, parse_ts, stable_id, utc

#: names the first (time) column may have, compared case-insensitively
TIME_COLUMNS: frozenset[str] = frozenset({"datetime", "timestamp", "time", "date", "ts"})
#: label (ground-truth) columns of public datasets
LABEL_COLUMN = re.compile(r"(?i)att_flag|attack(?:_[a-z0-9]+)?|label")
#: non-ISO time formats, day first (BATADAL), tried in order
TIME_FORMATS: tuple[str, ...] = ("%d/%m/%y %H", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%y %H:%M")
_TAG = re.compile(r"[A-Za-z0-9_.:\-/ ]{1,128}")


def _cells(line: str) -> list[str]:
    try:
        return [cell.strip() for cell in next(csv.reader([line]))]
    except (csv.Error, StopIteration) as exc:
        raise BadRecord(f"not a CSV line: {exc}") from exc


def is_header(cells: list[str]) -> bool:
    return bool(cells) and cells[0].lower() in TIME_COLUMNS


def parse_time(text: str) -> datetime:
    try:
        return parse_ts(text)
    except EventValidationError:
        pass
    for fmt in TIME_FORMATS:
        try:
            return utc(datetime.strptime(text, fmt))
        except ValueError:
            continue
    raise BadRecord(f"time {text!r} is not ISO 8601 or dd/mm/yy HH")


def read_header(path: str) -> tuple[str, ...] | None:
    """The header of the CSV file at ``path``, if its first line is one."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            first = fh.readline()
    except OSError:
        return None
    cells = _cells(first.lstrip("\ufeff").rstrip("\r\n")) if first else []
    return tuple(cells) if is_header(cells) else None


class ScadaCsvParser(Parser):
    """SCADA historian CSV exports, one metric event per tag value."""

    name: ClassVar[str] = "scada.csv"
    dataset: ClassVar[str] = "scada.historian"
    description: ClassVar[str] = "SCADA historian tag exports (CSV: time + one column per tag), one event per value."

    def __init__(self) -> None:
        self._headers: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def parse(self, record: RawRecord) -> list[Event]:
        line = record.data.lstrip("\ufeff").rstrip("\r\n")
        if "," not in line:
            raise NotMyFormat("no comma: not a CSV line")
        cells = _cells(line)
        if is_header(cells):
            bad = [c for c in cells[1:] if not _TAG.fullmatch(c)]
            if bad or len(set(cells)) != len(cells):
                raise BadRecord(f"header has empty, duplicate or unusable column names: {bad[:3] or 'duplicates'}")
            with self._lock:
                self._headers[record.source] = tuple(cells)
            return []
        header = self._header_for(record)
        if header is None:
            raise BadRecord(
                f"CSV row but no header (first column {', '.join(sorted(TIME_COLUMNS))}) was seen for "
                f"{record.source}; read the export from its first line"
            )
        if len(cells) != len(header):
            raise BadRecord(f"{len(cells)} columns, but the header names {len(header)}")
        timestamp = parse_time(cells[0])
        labels: dict[str, Value] = {}
        tags: list[tuple[str, float]] = []
        for name, text in zip(header[1:], cells[1:], strict=True):
            if text == "":
                continue
            try:
                value = float(text)
            except ValueError:
                raise BadRecord(f"column {name!r}: {text!r} is not a number") from None
            if not math.isfinite(value):
                raise BadRecord(f"column {name!r}: {text!r} is not a finite number")
            if LABEL_COLUMN.fullmatch(name):
                labels[f"labels.{name.lower()}"] = text
            else:
                tags.append((name, value))
        events = []
        for name, value in tags:
            fields: dict[str, Value] = {
                "event.kind": "metric",
                "event.category": ("ot",),
                "event.type": ("info",),
                "event.action": "tag-sample",
                "event.dataset": self.dataset,
                "ot.tag.name": name,
                "ot.tag.value": value,
                "message": f"{name}={value:g}",
                **labels,
            }
            event_id = stable_id(self.name, record.source, record.offset, name)
            events.append(Event(event_id, timestamp, fields))
        return events

    def _header_for(self, record: RawRecord) -> tuple[str, ...] | None:
        with self._lock:
            header = self._headers.get(record.source)
        if header is None and record.path:
            header = read_header(record.path)
            if header is not None:
                with self._lock:
                    self._headers[record.source] = header
        return header


register_parser(ScadaCsvParser)
