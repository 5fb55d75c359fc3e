"""File tailer: reads a text log's lines from a saved byte offset, in large blocks.

Each complete line is one :class:`RawRecord` (``source = file:<path>``,
``offset`` = the byte offset where the line starts, ``path`` = the file read),
made where the batch is parsed (:mod:`collectors.lines`: this process only counts
lines and hands each batch over as one block of bytes).
After every batch is stored, the offset is written to a small JSON checkpoint
in ``state_dir`` (temporary file + ``os.replace``), so a restart resumes
where the stored data ends: a crash between storing and checkpointing re-reads
that batch, and the stable event ids make the store skip it.

The checkpoint also remembers the file's device/inode and a hash of its first
bytes.  A different inode means the log was rotated: the rest of the old file
is read first if it is still in the same directory under another name, then
the new file from 0.  A file shorter than the offset, or with different first
bytes, was truncated or replaced and is read from 0.  A last line without its
newline is left for the next read; bytes that are not UTF-8 are replaced
(U+FFFD) and the parser decides; blank lines carry nothing and are skipped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from collectors.base import CollectorError, Parser
from collectors.lines import LineBlock, batches
from collectors.pipeline import IngestPipeline

log = logging.getLogger(__name__)

#: bytes read at a time (a batch of lines may span several reads)
READ_BLOCK = 1 << 20
#: bytes at the start of the file whose hash tells a replaced file from the one read before
HEAD_BYTES = 1024
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """Where reading stopped in which file."""

    path: str
    parser: str
    device: int
    inode: int
    offset: int
    head_length: int
    head_sha256: str
    version: int = CHECKPOINT_VERSION


def _head(fh: BinaryIO, offset: int) -> tuple[int, str]:
    length = min(offset, HEAD_BYTES)
    position = fh.tell()
    fh.seek(0)
    digest = hashlib.sha256(fh.read(length)).hexdigest()
    fh.seek(position)
    return length, digest


class FileCollector:
    """Tails one file into the pipeline with one parser; resumable through its checkpoint."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        parser: Parser,
        path: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        batch_size: int = 500,
    ) -> None:
        if batch_size < 1:
            raise CollectorError("file collector: batch_size must be positive")
        self.pipeline = pipeline
        self.parser = parser
        self.path = Path(path)
        self.state_dir = Path(state_dir)
        self.batch_size = batch_size
        self.source = f"file:{self.path}"
        key = hashlib.sha256(f"{parser.name}\x1f{os.path.abspath(self.path)}".encode()).hexdigest()[:16]
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.path.name)[:64]
        self.checkpoint_path = self.state_dir / f"file-{safe}-{key}.json"
        self._lock = threading.Lock()

    # checkpoint ---------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint | None:
        """The saved position, or None before the first read (or when the checkpoint is unreadable)."""
        try:
            data = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
            point = Checkpoint(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            # Reading again from 0 only repeats stored events, which the store skips by id.
            log.warning("%s: checkpoint %s is unreadable (%s); reading from the start", self.path,
                        self.checkpoint_path, exc)
            return None
        if point.version != CHECKPOINT_VERSION:
            log.warning("%s: checkpoint version %s is not %s; reading from the start", self.path, point.version,
                        CHECKPOINT_VERSION)
            return None
        return point

    def _point(self, fh: BinaryIO, offset: int) -> Checkpoint:
        """The checkpoint for ``offset`` in the open file (taken when the batch is read: the file may be closed
        by the time the batch is stored, when the caller reads on without draining)."""
        st = os.fstat(fh.fileno())
        head_length, head_sha256 = _head(fh, offset)
        return Checkpoint(str(self.path), self.parser.name, st.st_dev, st.st_ino, offset, head_length, head_sha256)

    def _save(self, point: Checkpoint) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.checkpoint_path.name, suffix=".tmp", dir=self.state_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(asdict(point), out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.checkpoint_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # reading ------------------------------------------------------------------------
    def run_once(self, drain: bool = True) -> int:
        """Read every complete line there is now; returns the number of records handed to the pipeline.

        With ``drain`` (the default) every record read is stored and checkpointed when this returns.
        ``drain=False`` (with parse workers) returns while the last batches are still parsed, so the
        caller can read its next file meanwhile; it must call the pipeline's ``drain`` (on this
        thread) before it counts on them being stored.  Inline, every batch is stored either way.
        """
        with self._lock:
            point = self.checkpoint()
            try:
                fh = open(self.path, "rb")  # noqa: SIM115 -- closed below; the old file may be read first
            except FileNotFoundError:
                # Rotated away and not recreated yet: finish the old file if it is still there.
                return self._finish_rotated(point) if point else 0
            with fh:
                st = os.fstat(fh.fileno())
                total = 0
                start = 0
                if point is not None:
                    if (point.device, point.inode) == (st.st_dev, st.st_ino):
                        start = self._resume_offset(fh, point, st.st_size)
                    else:
                        total += self._finish_rotated(point)
                        log.info("%s: new file (rotated); reading it from the start", self.path)
                moved = point is None or start != point.offset or (point.device, point.inode) != (st.st_dev, st.st_ino)
                total += self._read(fh, start, self.path, save=moved, drain=drain)
            return total

    def follow(self, stop_event: threading.Event, poll: float = 0.5) -> None:
        """Tail the file until ``stop_event`` is set, reading every ``poll`` seconds when idle."""
        failures = 0
        while not stop_event.is_set():
            try:
                read = self.run_once()
                failures = 0
            except Exception:  # the store is down or locked: keep the offset, try again later
                failures += 1
                log.exception("%s: reading failed (%d in a row); retrying", self.path, failures)
                read = 0
            if read == 0:
                stop_event.wait(poll * min(2**failures, 60))

    def _resume_offset(self, fh: BinaryIO, point: Checkpoint, size: int) -> int:
        if size < point.offset:
            log.info("%s: file is shorter than the checkpoint (truncated); reading from the start", self.path)
            return 0
        if _head(fh, point.head_length) != (point.head_length, point.head_sha256):
            log.info("%s: the first bytes changed (file replaced); reading from the start", self.path)
            return 0
        return point.offset

    def _finish_rotated(self, point: Checkpoint) -> int:
        """Read the rest of the file the checkpoint points to, if it is still in the directory."""
        directory = self.path.parent
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return 0
        for entry in entries:
            try:
                same = entry.is_file() and entry.inode() == point.inode and entry.stat().st_dev == point.device
            except OSError:
                continue
            if not same:
                continue
            with open(entry.path, "rb") as old:
                st = os.fstat(old.fileno())
                if (st.st_dev, st.st_ino) != (point.device, point.inode) or st.st_size <= point.offset:
                    return 0
                log.info("%s: reading the rest of the rotated file %s", self.path, entry.path)
                return self._read(old, point.offset, Path(entry.path))
        return 0

    def _read(self, fh: BinaryIO, offset: int, path: Path, save: bool = False, drain: bool = True) -> int:
        """Hand the complete lines from ``offset`` on to the pipeline; ``save`` checkpoints even if none came.

        The file is read in blocks of :data:`READ_BLOCK` bytes and each batch of ``batch_size``
        records goes to the pipeline as one block of lines (:class:`collectors.lines.LineBlock`):
        this process only counts lines; the records are made where they are parsed.
        """
        fh.seek(offset)
        records = 0
        name = str(path)
        size = self.batch_size
        pending = b""  # the lines of the batch being filled (from ``offset``), and any incomplete line after them
        scanned = 0  # how far into ``pending`` lines are counted
        count = 0  # records among the counted lines
        try:
            while block := fh.read(READ_BLOCK):
                pending += block
                start = 0  # where the batch being filled starts in ``pending``
                for end, counted in batches(pending, scanned, size, count):
                    scanned, count = end, counted
                    if count == size:
                        self._store(pending[start:end], offset, count, fh, name)
                        records += count
                        offset += end - start
                        start = end
                pending, scanned = pending[start:], scanned - start
            if count or scanned or save:  # the last batch; lines that were all blank still move the checkpoint
                self._store(pending[:scanned], offset, count, fh, name)
                records += count
            if drain:
                self.pipeline.drain()  # with parse workers: every batch read is stored and checkpointed
        except BaseException:
            self.pipeline.discard()  # not stored, not checkpointed: read again next time
            raise
        return records

    def _store(self, lines: bytes, offset: int, count: int, fh: BinaryIO, path: str) -> None:
        # The checkpoint runs only after the batch (and every one before it) is stored: a crash in
        # between re-reads, never skips.  With parse workers this returns while the batch is parsed.
        block = LineBlock(lines, offset, self.source, path, datetime.now(UTC))
        then = functools.partial(self._save, self._point(fh, offset + len(lines)))
        self.pipeline.submit_lines(block, count, self.parser, then=then)
