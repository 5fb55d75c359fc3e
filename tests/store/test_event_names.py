"""Field names of events read back from JSON: one interned string per name, whatever the event."""

from __future__ import annotations

import sys

import pytest

from store import event as event_module
from store.event import Event
from tests.helpers import T0, event


def test_events_read_from_json_share_their_interned_field_names() -> None:
    fields = {"process.command_line": "whoami /all", "winlog.event_data.Hashes": "SHA256=AB", "message": "m"}
    first, second = (Event.from_json(event(n, fields).to_json()) for n in range(2))
    assert dict(first.fields) == dict(second.fields) == fields
    for name in fields:
        mine = next(key for key in first.fields if key == name)
        theirs = next(key for key in second.fields if key == name)
        assert mine is theirs is sys.intern(name)  # detection's index looks names up by identity first


def test_names_past_the_cache_limit_are_read_right_and_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_module, "_NAMES", {})
    monkeypatch.setattr(event_module, "_PREFIXES", {})
    monkeypatch.setattr(event_module, "_names_held", 0)
    monkeypatch.setattr(event_module, "_NAMES_LIMIT", 3)
    hostile = {f"labels.k{n}": f"v{n}" for n in range(20)}  # flattened keys are chosen by the input
    read = Event.from_json(Event("e1", T0, hostile).to_json())
    assert dict(read.fields) == hostile
    assert event_module._names_held == 3 and sum(map(len, event_module._NAMES.values())) == 3
