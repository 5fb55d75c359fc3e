from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from store.errors import EventValidationError
from store.event import Event
from store.schema import FIELDS, markdown
from tests.helpers import REPO, T0, event


def test_fields_are_validated_and_normalised() -> None:
    e = event(
        fields={
            "source.ip": "10.0.0.1",
            "source.port": "502",
            "event.category": "network",
            "ot.register.value": 4500,
            "ot.request": True,
        }
    )
    assert e.get("source.port") == 502
    assert e.get("event.category") == ("network",)
    assert e.get("ot.register.value") == 4500.0
    assert e.get("ot.request") is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("no.such.field", "x", "unknown field 'no.such.field'"),
        ("source.ip", "999.1.1.1", "is not an IP address"),
        ("source.port", "abc", "is not an integer"),
        ("message", {"nested": 1}, "not allowed"),
        ("ot.request", "yes", "is not a boolean"),
        ("source.ip", ["10.0.0.1"], "is not an array field"),
    ],
)
def test_bad_fields_are_rejected_with_the_field_name(name: str, value: object, message: str) -> None:
    with pytest.raises(EventValidationError, match=message):
        event(fields={name: value})


def test_document_round_trip_keeps_every_field() -> None:
    e = event(
        fields={
            "message": "<script>alert(1)</script>",
            "iot.telemetry.pm25": 41.5,
            "labels.source": "file:/x",
            "host.ip": ["10.0.0.1", "10.0.0.2"],
            "ot.function": "write",
        }
    )
    doc = json.loads(e.to_json())
    assert doc["iot"]["telemetry"]["pm25"] == 41.5
    assert doc["host"]["ip"] == ["10.0.0.1", "10.0.0.2"]
    back = Event.from_document(doc)
    assert back == e
    assert back.get("message") == "<script>alert(1)</script>"


def test_naive_timestamps_are_utc_and_offsets_converted() -> None:
    e = Event("x", datetime(2026, 1, 1, 7, 0), {})
    assert e.timestamp.tzinfo is timezone.utc
    doc = e.to_document()
    doc["@timestamp"] = "2026-01-01T14:00:00+07:00"
    assert Event.from_document(doc).timestamp == datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)


def test_unsupported_schema_version_is_refused() -> None:
    doc = event().to_document()
    doc["citysoc"]["schema_version"] = "0.9"
    with pytest.raises(EventValidationError, match="schema version"):
        Event.from_document(doc)


def test_events_are_immutable() -> None:
    e = event(fields={"message": "a"})
    with pytest.raises(TypeError):
        e.fields["message"] = "b"  # type: ignore[index]
    changed = e.replace(message="b")
    assert (e.get("message"), changed.get("message")) == ("a", "b")
    assert changed.timestamp == T0


def test_schema_doc_is_current() -> None:
    doc = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    assert doc == markdown(), "docs/schema.md is stale: run 'citysoc schema --markdown > docs/schema.md'"
    assert all(f"`{name}`" in doc for name in FIELDS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ot.tag.value", float("nan")),
        ("ot.tag.value", float("inf")),
        ("ot.tag.value", "nan"),
        ("iot.telemetry.pm25", float("nan")),
        ("iot.telemetry.pm25", float("-inf")),
    ],
)
def test_non_finite_numbers_are_rejected(name: str, value: object) -> None:
    with pytest.raises(EventValidationError, match="finite"):
        event(fields={name: value})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # values the compiled fast paths see first: each must still fail with the field's name
        ("source.ip", "10.0.0.256", "field 'source.ip'.*not an IP address"),
        ("source.ip", "010.0.0.1", "field 'source.ip'.*not an IP address"),
        ("event.created", "2026-13-01T00:00:00.000000Z", "not an ISO 8601 timestamp"),
        ("source.port", True, "field 'source.port': boolean given for an integer field"),
        ("source.port", 1.5, "field 'source.port'.*not an integer"),
        ("ot.request", 1, "field 'ot.request'.*not a boolean"),
        ("labels.source", ["a", {"b": 1}], "field 'labels.source'.*not allowed"),
    ],
)
def test_fast_paths_keep_every_check(name: str, value: object, message: str) -> None:
    with pytest.raises(EventValidationError, match=message):
        event(fields={name: value})
    with pytest.raises(EventValidationError, match=message):
        event().with_fields({name: value})


def test_fast_paths_normalise_like_the_general_one() -> None:
    e = event(fields={"source.ip": "::FFFF:10.0.0.1", "event.created": "2026-11-21T15:00:00+07:00",
                      "ot.register.value": 41, "message": 7, "ot.request": False})  # fmt: skip
    assert e.get("source.ip") == "::ffff:a00:1"
    assert e.get("event.created") == "2026-11-21T08:00:00.000000Z"
    assert e.get("ot.register.value") == 41.0 and isinstance(e.get("ot.register.value"), float)
    assert e.get("message") == "7"
    assert e.get("ot.request") is False


def test_json_holds_what_orjson_refuses() -> None:
    e = event(fields={"event.duration": 2**70, "message": "bad \ud800 surrogate"})
    back = Event.from_json(e.to_json())
    assert back.get("event.duration") == 2**70
    assert back.get("message") == "bad \ud800 surrogate"
    assert json.loads(event(fields={"message": "ok"}).to_json())["message"] == "ok"
