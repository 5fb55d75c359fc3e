from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from store.errors import EventValidationError
from store.event import _VALIDATIONS, Event, shape_code
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


def _loop(fields: dict[str, object]) -> dict[str, object]:
    """The fields as Event's per-field loop makes them (a None value sends every field list there)."""
    return dict(Event("x", T0, {**fields, "message": None}).fields)


def test_the_per_shape_validation_gives_the_loops_fields_and_errors() -> None:
    """One field list, many events: valid values are kept or normalised as by the loop, bad ones raise the same."""
    good = {"source.ip": "10.0.0.1", "destination.ip": "2001:DB8::1", "related.ip": ("10.0.0.1", "10.0.0.2"),
            "source.port": "502", "destination.port": 102, "event.category": ("network",), "event.type": "info",
            "labels.site": "depot", "labels.count": 3, "ot.register.value": 7, "ot.request": True,
            "event.created": "2026-11-21T15:00:00+07:00", "host.name": 7}  # fmt: skip
    for _ in range(3):  # the first takes the loop, the second makes the field list's code, the third uses it
        assert dict(Event("x", T0, good).fields) == _loop(good)
    assert callable(_VALIDATIONS[tuple(good)])
    fields = Event("x", T0, good).fields
    assert fields["destination.ip"] == "2001:db8::1" and fields["source.port"] == 502
    assert fields["event.type"] == ("info",) and fields["host.name"] == "7" and fields["ot.register.value"] == 7.0
    bad_values = [("source.ip", "010.0.0.1", "not an IP address"), ("related.ip", ("10.0.0.1", "x"), "not an IP"),
                  ("source.port", "٥٠٢", None), ("source.port", "5x", "is not an integer"),
                  ("event.category", ("network", 5), None),
                  ("ot.request", "yes", "is not a boolean"), ("labels.site", {"a": 1}, "not allowed"),
                  ("source.ip", ["10.0.0.1"], "is not an array field")]  # fmt: skip
    for name, value, message in bad_values:
        fields_in = {**good, name: value}
        if message is None:  # converted, not refused: the same conversion as the loop
            assert dict(Event("x", T0, fields_in).fields) == _loop(fields_in)
            continue
        with pytest.raises(EventValidationError, match=message) as shaped:
            Event("x", T0, fields_in)
        with pytest.raises(EventValidationError) as looped:
            _loop(fields_in)
        assert str(shaped.value) == str(looped.value)
    first_bad = {**good, "source.ip": "x", "ot.request": "yes"}  # the first bad field in order is reported
    with pytest.raises(EventValidationError, match=r"field 'source\.ip'"):
        Event("x", T0, first_bad)
    assert "message" not in Event("x", T0, {**good, "message": None}).fields  # None is absent
    ignored = {**good, "@timestamp": "ignored", "event.id": "ignored"}
    assert Event("x", T0, ignored).fields == Event("x", T0, good).fields
    with pytest.raises(EventValidationError, match=r"unknown field 'no\.such'"):
        Event("x", T0, {**good, "no.such": "x"})


def test_shape_code_is_made_from_the_second_event_of_a_field_list_and_never_once_the_cache_is_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[str, ...]] = []

    def make(names: tuple[str, ...]) -> object:
        made.append(names)
        return lambda: names

    cache: dict[tuple[str, ...], object] = {}
    assert shape_code(cache, make, ("a",)) is None and made == []  # met once: the general path
    code = shape_code(cache, make, ("a",))
    assert callable(code) and made == [("a",)]
    assert shape_code(cache, make, ("a",)) is code and made == [("a",)]  # made once
    assert shape_code(cache, lambda names: None, ("b",)) is None
    assert shape_code(cache, lambda names: None, ("b",)) is None and cache[("b",)] is not None  # refusal kept
    monkeypatch.setattr("store.event._PLAN_CACHE_SIZE", len(cache))
    for _ in range(3):
        assert shape_code(cache, make, ("c",)) is None  # full: no new code, whatever the input's shapes
    assert made == [("a",)] and ("c",) not in cache
