"""Shared test helpers: fixed clocks, event builders, paths to shared data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from store.event import Event, stable_id

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
T0 = datetime(2026, 11, 21, 8, 0, 0, tzinfo=timezone.utc)


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared public corpora are not checked out beside the repo")
    return path


def event(seconds: float = 0, fields: Mapping[str, Any] | None = None, event_id: str | None = None) -> Event:
    """An event at T0 + seconds with the given dotted fields."""
    body = dict(fields or {})
    return Event(
        id=event_id or stable_id("test", str(seconds), repr(sorted(body.items()))),
        timestamp=T0 + timedelta(seconds=seconds),
        fields=body,
    )
