"""The ingest pipeline's bookkeeping: clock skew, per-source counters per stage, dead letters once."""

from __future__ import annotations

import json
from datetime import timedelta

from collectors.base import RawRecord, get_parser
from collectors.metrics import Metrics
from collectors.pipeline import FUTURE_TAG, IngestPipeline
from store.sqlite import SQLiteStore
from tests.helpers import T0


def _iot(seconds: float, n: int) -> str:
    """An IoT-platform audit line (the documented format) whose device clock says T0 + seconds."""
    return json.dumps({
        "timestamp": (T0 + timedelta(seconds=seconds)).isoformat(), "platform": "iot-hn-01",
        "event_type": "auth_failure", "protocol": "mqtt",
        "device": {"id": f"sl-{n:04d}", "type": "streetlight"},
        "actor": {"ip": "10.20.7.9", "client_id": f"sl-{n:04d}"},
    })  # fmt: skip


def _record(line: str, source: str, offset: int) -> RawRecord:
    return RawRecord(line, source, str(offset), received=T0)


def test_clock_skew_is_recorded_per_event_and_source_and_the_future_is_flagged(
    pipeline: IngestPipeline, store: SQLiteStore
) -> None:
    records = [
        _record(_iot(-30, 1), "mqtt:late", 1),  # 30 s old when received: delay or a slow clock
        _record(_iot(4.5, 2), "mqtt:ahead", 1),  # within the tolerance
        _record(_iot(3600, 3), "mqtt:ahead", 2),  # an hour in the future: the device clock is ahead
    ]
    pipeline.ingest(records, get_parser("iot.platform"))
    by_device = {e.get("iot.device.id"): e for e in store.iter_events()}
    assert by_device["sl-0001"].get("event.skew_seconds") == -30.0
    assert by_device["sl-0002"].get("event.skew_seconds") == 4.5
    assert by_device["sl-0003"].get("event.skew_seconds") == 3600.0
    assert by_device["sl-0003"].get("event.created") == "2026-11-21T08:00:00.000000Z"
    assert FUTURE_TAG in by_device["sl-0003"].get("tags", ())
    assert FUTURE_TAG not in by_device["sl-0002"].get("tags", ())
    ahead = pipeline.stats.sources["mqtt:ahead"]
    assert (ahead.skew_min, ahead.skew_max, ahead.skew_last, ahead.future) == (4.5, 3600.0, 3600.0, 1)
    assert pipeline.stats.sources["mqtt:late"].future == 0


def test_every_stage_is_counted_per_source_and_exposed_as_metrics(pipeline: IngestPipeline) -> None:
    parser = get_parser("iot.platform")
    pipeline.ingest([_record(_iot(0, 1), "mqtt:a", 1), _record("not json", "mqtt:a", 2)], parser)
    pipeline.ingest([_record(_iot(0, 1), "mqtt:a", 1)], parser)  # resent: a duplicate
    pipeline.ingest([_record(_iot(0, 2), "mqtt:b", 1)], parser)
    a, b = pipeline.stats.sources["mqtt:a"], pipeline.stats.sources["mqtt:b"]
    assert a.counters() == {"received": 3, "parsed": 2, "dead_lettered": 1, "stored": 1, "duplicates": 1, "future": 0}
    assert b.counters() == {"received": 1, "parsed": 1, "dead_lettered": 0, "stored": 1, "duplicates": 0, "future": 0}
    text = Metrics().render(pipeline.stats)
    assert 'citysoc_pipeline_source_records_total{source="mqtt:a",stage="dead_lettered"} 1' in text
    assert 'citysoc_pipeline_source_records_total{source="mqtt:a",stage="duplicates"} 1' in text
    assert 'citysoc_pipeline_source_records_total{source="mqtt:b",stage="stored"} 1' in text
    assert 'citysoc_pipeline_source_skew_seconds{source="mqtt:b",which="max"} 0.0' in text


def test_a_resent_batch_adds_no_dead_letter_twice(pipeline: IngestPipeline, store: SQLiteStore) -> None:
    parser = get_parser("iot.platform")
    batch = [_record("{broken", "http:lgsp", 7), _record(_iot(0, 1), "http:lgsp", 8), _record("[]", "http:lgsp", 9)]
    pipeline.ingest(batch, parser)
    first = store.list_dead_letters()
    pipeline.ingest(batch, parser)  # the sender did not see our acknowledgement and sends it all again
    assert store.count_dead_letters() == 2
    assert store.list_dead_letters() == first
    # the same offset with other content is another record, so another dead letter
    pipeline.ingest([_record("{other", "http:lgsp", 7)], parser)
    assert store.count_dead_letters() == 3
