"""Write-ahead spool: accepted records are on disk before the sender is acknowledged.

A push transport (HTTP ingest, MQTT) calls :meth:`Spool.append` and only
acknowledges the sender once it returns: the records are then written and
``fsync``-ed to an append-only segment file, so a ``kill -9`` of the collector
loses nothing it acknowledged.  A drainer (:meth:`Spool.drain`, or the
:class:`SpoolDrainer` thread) reads the segments from a committed cursor, hands
the records to :meth:`IngestPipeline.ingest` and moves the cursor (temporary file
+ ``os.replace``) only after the store accepted them.  A crash between storing
and committing re-reads that batch; the stable event ids make the store skip
it, so a restart gives neither losses nor duplicates.

Each spool line is one JSON object: a record (``k: "r"``) with its parser name,
source, offset and receive time, or a rejected frame (``k: "d"``) that becomes a
dead letter.  A torn last line (the process died while writing it, before the
sender was acknowledged) is cut off when the spool is opened.

Back-pressure: when more than ``max_pending_bytes`` wait to be drained,
:meth:`append` raises :class:`SpoolFull`; transports turn that into "retry
later" for the sender (HTTP 503, no MQTT acknowledgement) instead of dropping.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from collectors.base import CollectorError, Parser, RawRecord, get_parser
from collectors.pipeline import IngestPipeline
from store.event import format_ts, parse_ts

log = logging.getLogger(__name__)

SEGMENT_BYTES = 32 * 1024 * 1024
MAX_PENDING_BYTES = 256 * 1024 * 1024
_SEGMENT = re.compile(r"segment-(\d{8})\.ndjson")


class SpoolError(CollectorError):
    """The spool directory cannot be used (disk, permissions, a corrupt cursor)."""


class SpoolFull(CollectorError):
    """Too much is waiting to be stored; the sender should retry later."""


@dataclass(frozen=True)
class Rejected:
    """A frame a transport could not turn into a record; drained as a dead letter."""

    source: str
    offset: str
    reason: str
    raw: str


@dataclass(frozen=True)
class Cursor:
    """How far the spool has been stored: segment number and byte offset in it."""

    segment: int
    offset: int


def _segment_name(number: int) -> str:
    return f"segment-{number:08d}.ndjson"


def _encode_record(record: RawRecord, parser: str) -> dict[str, Any]:
    line: dict[str, Any] = {"k": "r", "p": parser, "d": record.data, "s": record.source, "o": record.offset,
                            "t": format_ts(record.received)}
    if record.peer is not None:
        line["peer"] = record.peer
    if record.path is not None:
        line["path"] = record.path
    return line


class Spool:
    """An append-only, fsync-ed queue of records in ``directory``; one writer lock, one drainer."""

    def __init__(
        self,
        directory: str | Path,
        segment_bytes: int = SEGMENT_BYTES,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        fsync: bool = True,
    ) -> None:
        if segment_bytes < 1 or max_pending_bytes < 1:
            raise SpoolError("spool: segment_bytes and max_pending_bytes must be positive")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_pending_bytes = max_pending_bytes
        self.fsync = fsync
        self._lock = threading.Lock()  # writers
        self._drain_lock = threading.Lock()  # one drainer at a time
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"spool: cannot create {self.directory}: {exc}") from exc
        # One process per spool: a second writer would interleave lines and cut the first one's "torn" tail.
        # The kernel drops the lock when the holder dies, so a kill -9 never leaves it stale.
        self._lockfile = (self.directory / "lock").open("a")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lockfile.close()
            raise SpoolError(f"spool {self.directory} is in use by another collector process") from exc
        try:
            self._cursor = self._load_cursor()
            self._current = max([*self._segments(), self._cursor.segment])
            self._writer: BinaryIO = self._open_segment(self._current, repair=True)
        except BaseException:
            self._lockfile.close()
            raise
        self._written = self._writer.tell()
        self._parsers: dict[str, Parser] = {}

    # writing --------------------------------------------------------------------------
    def append(self, records: Sequence[RawRecord | Rejected], parser: str) -> None:
        """Write records (for ``parser``) and dead-letter frames durably; raise SpoolFull when too much waits."""
        if not records:
            return
        lines = []
        for item in records:
            if isinstance(item, Rejected):
                body: dict[str, Any] = {"k": "d", "s": item.source, "o": item.offset, "why": item.reason,
                                        "d": item.raw}
            else:
                body = _encode_record(item, parser)
            lines.append(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            if self.pending_bytes() > self.max_pending_bytes:
                raise SpoolFull(f"spool {self.directory}: over {self.max_pending_bytes} bytes wait to be stored")
            if self._written and self._written + len(data) > self.segment_bytes:
                self._rotate()
            try:
                self._writer.write(data)
                self._writer.flush()
                if self.fsync:
                    os.fsync(self._writer.fileno())
            except OSError as exc:
                raise SpoolError(f"spool: cannot write {self._path(self._current)}: {exc}") from exc
            self._written += len(data)

    def pending_bytes(self) -> int:
        """Bytes written but not yet stored (approximate while a drain runs)."""
        cursor = self._cursor
        total = 0
        for number in self._segments():
            if number < cursor.segment:
                continue
            try:
                size = self._path(number).stat().st_size
            except FileNotFoundError:
                continue
            total += size - (cursor.offset if number == cursor.segment else 0)
        return max(total, 0)

    def _rotate(self) -> None:
        self._writer.close()
        self._current += 1
        self._writer = self._open_segment(self._current, repair=False)
        self._written = 0

    # draining -------------------------------------------------------------------------
    def drain(self, pipeline: IngestPipeline, batch_size: int = 1000, limit: int | None = None) -> int:
        """Store what is spooled (up to ``limit`` records); returns how many records and dead letters were handled.

        A store failure propagates and leaves the cursor where it was, so the
        same records are tried again by the next drain.
        """
        handled = 0
        with self._drain_lock:
            while limit is None or handled < limit:
                cursor = self._cursor
                path = self._path(cursor.segment)
                try:
                    with path.open("rb") as fh:
                        fh.seek(cursor.offset)
                        chunk = [fh.readline() for _ in range(batch_size)]
                except FileNotFoundError:
                    chunk = []
                complete = [line for line in chunk if line.endswith(b"\n")]
                if not complete:
                    with self._lock:
                        current = self._current
                    if cursor.segment < current:  # this segment is finished: go on with the next one
                        self._commit(Cursor(cursor.segment + 1, 0))
                        path.unlink(missing_ok=True)
                        continue
                    return handled
                self._handle(pipeline, complete, cursor)
                handled += len(complete)
                self._commit(Cursor(cursor.segment, cursor.offset + sum(len(line) for line in complete)))
        return handled

    def _handle(self, pipeline: IngestPipeline, lines: list[bytes], cursor: Cursor) -> None:
        group: list[RawRecord] = []
        group_parser = ""
        position = cursor.offset
        for raw in lines:
            where = f"{self._path(cursor.segment)}@{position}"
            position += len(raw)
            try:
                item = json.loads(raw)
                kind = item["k"]
            except (ValueError, KeyError, TypeError) as exc:
                raise SpoolError(f"spool line {where} is not a spool entry: {exc}") from exc
            if kind == "d":
                pipeline.dead_letter(item["s"], item["o"], item["why"], item["d"])
                continue
            if item["p"] != group_parser and group:
                pipeline.ingest(group, self._parser(group_parser), batch_size=len(group))
                group = []
            group_parser = item["p"]
            group.append(RawRecord(item["d"], item["s"], item["o"], received=parse_ts(item["t"]),
                                   peer=item.get("peer"), path=item.get("path")))
        if group:
            pipeline.ingest(group, self._parser(group_parser), batch_size=len(group))

    def _parser(self, name: str) -> Parser:
        if name not in self._parsers:
            self._parsers[name] = get_parser(name)
        return self._parsers[name]

    # files ----------------------------------------------------------------------------
    def _path(self, number: int) -> Path:
        return self.directory / _segment_name(number)

    def _segments(self) -> list[int]:
        return sorted(int(m[1]) for p in self.directory.iterdir() if (m := _SEGMENT.fullmatch(p.name)))

    def _open_segment(self, number: int, repair: bool) -> BinaryIO:
        path = self._path(number)
        try:
            fh = path.open("ab")
            if repair:
                # A line without its newline was being written when the process died; it was never acknowledged.
                size = fh.tell()
                if size:
                    with path.open("rb") as reader:
                        data = reader.read()
                    keep = data.rfind(b"\n") + 1
                    if keep != size:
                        log.warning("spool: cutting a torn last line (%d bytes) off %s", size - keep, path)
                        fh.truncate(keep)
                        fh.seek(keep)
            return fh
        except OSError as exc:
            raise SpoolError(f"spool: cannot open {path}: {exc}") from exc

    def _load_cursor(self) -> Cursor:
        path = self.directory / "cursor.json"
        try:
            doc = json.loads(path.read_text("utf-8"))
            return Cursor(int(doc["segment"]), int(doc["offset"]))
        except FileNotFoundError:
            return Cursor(0, 0)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise SpoolError(f"spool: cursor {path} is unreadable ({exc}); fix or remove it to re-read "
                             "every segment (the stable event ids keep the store free of duplicates)") from exc

    def _commit(self, cursor: Cursor) -> None:
        body = json.dumps({"segment": cursor.segment, "offset": cursor.offset,
                           "at": format_ts(datetime.now(UTC))})
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".cursor-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, self.directory / "cursor.json")
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise SpoolError(f"spool: cannot write the cursor in {self.directory}: {exc}") from exc
        self._cursor = cursor

    def close(self) -> None:
        with self._lock:
            self._writer.close()
            self._lockfile.close()


class SpoolDrainer:
    """A thread that drains ``spool`` into ``pipeline`` every ``interval`` seconds, retrying a failing store."""

    def __init__(self, spool: Spool, pipeline: IngestPipeline, interval: float = 0.2) -> None:
        self.spool = spool
        self.pipeline = pipeline
        self.interval = interval
        self.last_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-drain", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.is_set():
            try:
                handled = self.spool.drain(self.pipeline)
                self.last_error, delay = None, self.interval
                if handled:
                    continue
            except Exception as exc:  # the store is broken: the records stay spooled, try again with back-off
                self.last_error = exc
                log.error("spool drain failed, retrying in %.1f s", delay, exc_info=True)
                delay = min(delay * 2, 5.0)
            self._stop.wait(delay)

    def stop(self) -> None:
        """Stop the thread after a last drain of everything spooled."""
        self._stop.set()
        self._thread.join()
        self.spool.drain(self.pipeline)
