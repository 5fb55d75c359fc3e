"""The event's cached JSON and its pickled form (how parse workers send events back)."""

from __future__ import annotations

import json
import marshal
import pickle

import pytest

from store.event import _BUILDERS, Event
from tests.helpers import event


def _sample() -> Event:
    return event(3, {"source.ip": "10.20.1.7", "event.category": ["network"], "labels.site": "ps3",
                     "event.severity": 4, "http.response.status_code": 404})


def test_to_json_is_computed_once_and_kept() -> None:
    sample = _sample()
    first = sample.to_json()
    assert sample.to_json() is first
    assert first == Event.from_json(first).to_json()


def test_a_changed_event_gets_its_own_json() -> None:
    sample = _sample()
    before = sample.to_json()
    changed = sample.with_fields({"labels.site": "ps4"})
    assert '"site":"ps4"' in changed.to_json()
    assert sample.to_json() == before
    assert changed.replace(**{"labels.site": None}).to_json() != before  # removed, not the cached text


def test_pickled_events_are_equal_and_carry_their_json() -> None:
    sample = _sample()
    fresh = pickle.loads(pickle.dumps(sample))  # noqa: S301 -- our own data
    assert fresh == sample
    assert "_json" not in fresh.__dict__  # not serialised yet: nothing to carry
    sample.to_json()
    carried = pickle.loads(pickle.dumps(sample))  # noqa: S301 -- our own data
    assert carried == sample
    assert carried.__dict__["_json"] == sample.to_json()
    assert dict(carried.fields) == dict(sample.fields)
    assert carried.fields["event.category"] == ("network",)
    assert carried.timestamp == sample.timestamp and carried.timestamp.tzinfo is not None


def test_the_wire_form_survives_marshal_with_the_exact_timestamp() -> None:
    sample = event(0.000001, {"event.category": ["network"], "event.duration": 2**70, "message": "a\udcffb"})
    sample = sample.with_fields({"@timestamp": None, "tags": ["x", "y"]})
    text = sample.to_json()
    back = Event.from_wire(marshal.loads(marshal.dumps(sample.to_wire())))  # noqa: S302 -- our own data
    assert back == sample
    assert back.timestamp == sample.timestamp  # microseconds since the epoch: no float rounding
    assert back.timestamp.microsecond == 1
    assert back.to_json() is not text and back.to_json() == text  # carried, not computed again
    assert back.fields["tags"] == ("x", "y")


def test_to_json_is_the_sorted_document_for_every_shape_conflicting_ones_included() -> None:
    shapes = [
        {"source.ip": "10.0.0.1", "source.port": 502, "labels.site": "ps3", "labels.a.b": "1", "tags": ["x"]},
        {"labels.site": "ps3", "labels": "whole"},  # a value where an object would go: the general path
        {"message": "m\u00e9", "host.os.type": "linux", "host.name": "plc-1", "event.category": ["network"]},
    ]
    for fields in shapes:
        for moment in (1, 2, 3):  # a field list's first event takes the general path, later ones its generated code
            sample = event(moment, fields)
            assert json.loads(sample.to_json()) == sample.to_document()
            assert sample.to_json() == json.dumps(sample.to_document(), sort_keys=True, ensure_ascii=False,
                                                  separators=(",", ":"))
    assert callable(_BUILDERS[tuple(event(1, shapes[0]).fields)])  # the generated code did run
    conflict = event(1, {"labels": "whole", "labels.site": "ps3"})
    with pytest.raises(TypeError):  # as before this change: such a document cannot be built
        conflict.to_json()


STORED_SHAPES = [
    {"source.ip": "10.20.1.7", "event.category": ["network", "iot"], "labels.site": "ps3", "labels.a.b": "1",
     "event.severity": 4, "event.dataset": "iot.mqtt", "labels.source": "file:/var/log/x", "tags": ["x"]},
    {"message": "m\u00e9 \ud800 lone", "ot.register.value": 2.0, "event.duration": 2**70, "event.dataset": "scada.csv"},
    {"message": "no dataset, no source", "network.transport": "tcp", "host.os.type": "linux"},
]


@pytest.mark.parametrize("fields", STORED_SHAPES)
def test_a_stored_only_event_reads_back_exactly_its_fields_from_its_json(fields: dict[str, object]) -> None:
    sample = event(1.000001, fields)
    wire = marshal.loads(marshal.dumps(sample.to_stored_wire()))  # noqa: S302 -- our own data
    back = Event.from_stored_wire(wire)
    assert back.to_json() == sample.to_json() and back.id == sample.id and back.timestamp == sample.timestamp
    assert back.fields.get("event.dataset") == sample.fields.get("event.dataset")  # carried beside the JSON ...
    assert back.fields.get("labels.source") == sample.fields.get("labels.source")
    assert back.fields._fields is None  # type: ignore[attr-defined]  # ... so the JSON was not read for them
    assert dict(back.fields) == dict(sample.fields)
    assert {k: type(v) for k, v in back.fields.items()} == {k: type(v) for k, v in sample.fields.items()}
    assert back == sample and sample == back
    assert back.to_document() == sample.to_document()
    assert back.with_fields({"labels.site": "ps4"}).fields["labels.site"] == "ps4"
    assert pickle.loads(pickle.dumps(back)) == sample  # noqa: S301 -- our own data
