"""Malformed input at the push transports: never a crash, every bad record rejected with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.base import NESTED_TOO_DEEP, BadRecord, NotMyFormat, RawRecord, get_parser
from collectors.spool import Rejected, Spool
from collectors.transports.coap import SENML_JSON, ReportError, report_record
from collectors.transports.http_ingest import HttpIngestApp, IngestSource, TokenStore
from collectors.transports.mqtt import message_record
from store.errors import EventValidationError
from tests.helpers import T0

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=6), children, max_size=3), max_leaves=8)
payloads = st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
topics = st.sampled_from(["city/ba-dinh/air-quality/aq-001/telemetry", "city//x/y/telemetry", "vendor/x"])


def _parses_or_rejects(record: RawRecord) -> None:
    try:
        get_parser("iot.mqtt").parse(record)
    except (BadRecord, NotMyFormat, EventValidationError) as exc:
        assert str(exc)


@FUZZ
@given(topic=topics, payload=payloads)
def test_mqtt_messages(topic: str, payload: bytes) -> None:
    item = message_record("mqtt:b:1", topic, payload, T0)
    if isinstance(item, Rejected):
        assert item.reason.startswith("[mqtt] ") and item.offset.startswith(topic + ":")
    else:
        _parses_or_rejects(item)


@FUZZ
@given(path=st.lists(st.text(max_size=6), max_size=5), payload=payloads,
       fmt=st.sampled_from([None, 50, SENML_JSON, 60, 0]))
def test_coap_reports(path: list[str], payload: bytes, fmt: int | None) -> None:
    try:
        record = report_record("coap:h:1", ["telemetry", *path], payload, fmt, T0)
    except ReportError as exc:
        assert str(exc)
        return
    _parses_or_rejects(record)


@FUZZ
@given(lines=st.lists(st.text(max_size=60) | json_values.map(json.dumps), max_size=12))
def test_http_bodies(tmp_path: Path, lines: list[str]) -> None:
    spool = Spool(tmp_path / "spool", fsync=False)
    try:
        app = HttpIngestApp(TokenStore(tmp_path / "t.json"), spool)
        text = "\n".join(lines)
        result = app.accept(IngestSource("fuzz", "camera.platform", "x"), text, "b", None)
        assert result is not None
        counted = [n for n, line in enumerate(text.split("\n"), 1) if line.rstrip("\r").strip()]
        rejected = [r["line"] for r in result["rejected"]]
        assert result["accepted"] + len(rejected) == len(counted)
        assert set(rejected) <= set(counted)
        assert all(r["reason"].startswith(f"line {r['line']}: ") for r in result["rejected"])
    finally:
        spool.close()


#: JSON nested deeper than Python's decoder goes: it raises RecursionError, which a hostile sender can cause
DEEP = b'{"ts": 1, "value": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"


def test_json_nested_too_deep_is_rejected_with_a_reason_at_each_push_transport() -> None:
    item = message_record("mqtt:b:1", "city/ba-dinh/air-quality/aq-001/telemetry", DEEP, T0)
    assert isinstance(item, Rejected) and item.reason == f"[mqtt] {NESTED_TOO_DEEP}"
    with pytest.raises(ReportError, match="nested deeper"):
        report_record("coap:h:1", ["telemetry", "ba-dinh", "aq", "aq-001"], DEEP, None, T0)
