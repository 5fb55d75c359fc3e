"""Retro-hunt: match newly arrived indicators against the events already stored.

Only the *new* indicators are compiled into a fresh index, so a hunt costs one
pass over the stored events (``Store.iter_events``, in pages) however many
indicators were known before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from enrichment.intel.enricher import threat_fields
from enrichment.intel.indicators import IndicatorIndex, Match
from store.base import Store
from store.event import Event


@dataclass(frozen=True)
class Hit:
    """A stored event and the new indicators it matches; ``event`` carries the ``threat.*`` fields."""

    event: Event
    matches: tuple[Match, ...]


def retrohunt(
    store: Store,
    indicators: Iterable[Mapping[str, Any]],
    feed: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> Iterator[Hit]:
    """Yield every stored event (in time order) that one of ``indicators`` matches."""
    index = IndicatorIndex()
    index.add_all(indicators, feed)
    if not len(index):
        return
    for event in store.iter_events(start, end):
        matches = index.match(event)
        if matches:
            yield Hit(event.with_fields(threat_fields(matches)), tuple(matches))
