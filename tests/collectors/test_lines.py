"""A file's lines as records: the rules both the reading and the parsing process apply."""

from __future__ import annotations

import pytest

from collectors.lines import LineBlock, batches, block_records, is_blank
from tests.helpers import T0


@pytest.mark.parametrize("line", [b"", b"   ", b"\t\r", b"\x1c\x1f", "\u00a0\u2003".encode(), b"\x0b\x0c "])
def test_whitespace_lines_are_blank_as_str_strip_sees_them(line: bytes) -> None:
    assert is_blank(line)
    assert not line.decode("utf-8", "replace").strip()


@pytest.mark.parametrize("line", [b"x", b"  {", "\u00a0\u00e9".encode(), b"\xff", b"\x1c-"])
def test_lines_with_any_other_character_are_records(line: bytes) -> None:
    assert not is_blank(line)


def test_records_keep_their_byte_offsets_text_and_receipt_time() -> None:
    data = "first\r\n\n  \ncaf\u00e9 \xff\nlast\n".encode().replace(b"\xc3\xbf", b"\xff")
    records = list(block_records(LineBlock(data, 100, "file:/x.log", "/x.log", T0)))
    assert [(r.data, r.offset) for r in records] == [("first", "100"), ("caf\u00e9 \ufffd", "111"), ("last", "119")]
    assert {(r.source, r.path, r.received) for r in records} == {("file:/x.log", "/x.log", T0)}


def test_batches_count_records_not_blank_lines_and_stop_at_the_last_complete_line() -> None:
    data = b"a\n\nb\nc\n  \nd\nincomplete"
    assert list(batches(data, 0, 2)) == [(5, 2), (12, 2), (12, 0)]  # a+b, then c+d; the tail is not a line
    assert list(batches(data, 0, 3)) == [(7, 3), (12, 1)]
    assert list(batches(data, 5, 2, count=1)) == [(7, 2), (12, 1)]  # a batch already holding one record
    assert list(batches(b"", 0, 2)) == [(0, 0)]
