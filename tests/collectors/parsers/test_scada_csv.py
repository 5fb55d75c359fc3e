"""The SCADA historian CSV parser on BATADAL (public) and a pumping-station export (made up)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from collectors.base import BadRecord, NotMyFormat
from collectors.parsers.scada_csv import ScadaCsvParser
from tests.collectors.samples import DATA, parse_file, record, records
from tests.helpers import shared

SAMPLE = DATA / "scada" / "pumping_station.csv"


def test_batadal_dataset04_one_event_per_tag_value_with_attack_labels() -> None:
    parsed = parse_file(ScadaCsvParser(), shared("batadal", "dataset04.csv"))
    assert (parsed.silent, parsed.bad, parsed.not_mine) == (1, [], [])  # the header line
    assert len(parsed.events) == 4177 * 43  # rows x tags (DATETIME and ATT_FLAG are not tags)
    assert len({e.id for e in parsed.events}) == len(parsed.events)
    per_label = Counter(e.get("labels.att_flag") for e in parsed.events)
    assert per_label == {"0": (4177 - 492) * 43, "1": 492 * 43}
    first = parsed.events[0]
    assert first.timestamp == datetime(2016, 7, 4, 0, 0, tzinfo=UTC)  # dd/mm/yy HH, day first
    assert dict(first.fields) == {
        "event.kind": "metric",
        "event.category": ("ot",),
        "event.type": ("info",),
        "event.action": "tag-sample",
        "event.dataset": "scada.historian",
        "ot.tag.name": "L_T1",
        "ot.tag.value": 2.44,
        "message": "L_T1=2.44",
        "labels.att_flag": "0",
    }
    last = parsed.events[-1]
    assert (last.timestamp, last.get("ot.tag.name")) == (datetime(2016, 12, 25, 0, 0, tzinfo=UTC), "P_J422")


def test_iso_times_missing_samples_and_bad_rows() -> None:
    parsed = parse_file(ScadaCsvParser(), SAMPLE)
    assert [(e.timestamp.isoformat(), e.get("ot.tag.name"), e.get("ot.tag.value")) for e in parsed.events[:4]] == [
        ("2026-11-20T01:00:00+00:00", "PS3_LT01_level_m", 3.42),
        ("2026-11-20T01:00:00+00:00", "PS3_P01_run", 1.0),
        ("2026-11-20T01:00:00+00:00", "PS3_FT01_flow_lps", 118.5),
        ("2026-11-20T01:00:10+00:00", "PS3_LT01_level_m", 3.41),
    ]
    assert len(parsed.events) == 3 + 2 + 3 + 3  # the empty flow cell is no sample
    assert parsed.events[-1].timestamp == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert {e.get("labels.attack") for e in parsed.events} == {"0", "1"}
    assert [reason for _, reason in parsed.bad] == [
        "3 columns, but the header names 5",
        "column 'PS3_FT01_flow_lps': 'n/a' is not a number",
        "time '2026-11-20T08:00:60' is not ISO 8601 or dd/mm/yy HH",
    ]


def test_resuming_mid_file_reads_the_header_back_and_ids_are_stable() -> None:
    rows = records(SAMPLE)
    fresh = ScadaCsvParser().parse(rows[3])  # no header seen: read from the file
    assert [e.get("ot.tag.name") for e in fresh] == ["PS3_LT01_level_m", "PS3_P01_run", "PS3_FT01_flow_lps"]
    again = parse_file(ScadaCsvParser(), SAMPLE).events
    assert [e.id for e in fresh] == [e.id for e in again[5:8]]


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        ("no commas here", NotMyFormat, "not a CSV line"),
        ("2026-11-20T08:00:00Z,1,2", BadRecord, "no header"),
        ("timestamp,a,a", BadRecord, "duplicate"),
    ],
)
def test_unusable_lines(line: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        ScadaCsvParser().parse(record(line))
