"""Text lines in blocks of bytes: how a file's complete lines become records, and batches of them.

:class:`collectors.transports.files.FileCollector` reads a log in large blocks and hands whole
batches of complete lines to the pipeline as one ``bytes`` object (:class:`LineBlock`), so the
process that stores does no per-line work beyond counting; the records are made where the
block is parsed (a parse worker, or inline) by :func:`block_records`.  Both sides use the rules
here, so a line is a record, or a blank line skipped, the same way everywhere:

* a line ends with ``\\n``; text after the last ``\\n`` of a file is not a line yet;
* it is decoded as UTF-8 with invalid bytes replaced (U+FFFD), its trailing ``\\r``/``\\n`` removed;
* a line that is empty or only whitespace (``str.strip``) is skipped;
* a record's offset is the byte offset where its line starts, as text.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from collectors.base import RawRecord

#: ASCII bytes that ``str.strip`` removes and ``bytes.strip`` keeps (information separators)
_STR_ONLY_SPACE = frozenset(b"\x1c\x1d\x1e\x1f")


class LineBlock(NamedTuple):
    """Complete lines of one source, as read: what a file collector hands to the pipeline per batch."""

    #: the lines' bytes, each ending with ``\\n``
    data: bytes
    #: byte offset of ``data[0]`` in the file
    offset: int
    source: str
    path: str | None
    received: datetime


def is_blank(line: bytes) -> bool:
    """Whether ``line`` (without its ``\\n``) decodes to nothing but whitespace, as ``str.strip`` sees it."""
    stripped = line.strip()
    if not stripped:
        return True
    first = stripped[0]
    if first < 0x80 and first not in _STR_ONLY_SPACE:
        return False  # an ASCII character that is not whitespace: the usual case, decided without decoding
    return not line.decode("utf-8", "replace").strip()


def batches(data: bytes, start: int, size: int, count: int = 0) -> Iterator[tuple[int, int]]:
    """Cut the complete lines of ``data`` from ``start`` on into batches of ``size`` records.

    Yields ``(end, records)``: the position after the line that completes a batch (``records`` ==
    ``size``, counting ``count`` records already in the batch before ``start``), and once at the
    end the position after the last complete line with the records after the last batch
    (possibly 0).  Blank lines belong to a batch but are not records.
    """
    find = data.find
    position = start
    while True:
        newline = find(b"\n", position)
        if newline < 0:
            yield position, count
            return
        if newline > position and not is_blank(data[position:newline]):
            count += 1
        position = newline + 1
        if count == size:
            yield position, count
            count = 0


def block_records(block: LineBlock) -> Iterator[RawRecord]:
    """The records of a block's lines, in order (see the module's rules)."""
    data, offset, source, path, received = block
    position = 0
    for line in data.split(b"\n")[:-1]:  # the block ends with "\n": the last item is empty
        start = offset + position
        position += len(line) + 1
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text.strip():
            yield RawRecord(text, source, str(start), received, None, path)
