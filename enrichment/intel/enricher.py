"""The ingest enricher that tags events matching threat-intel indicators with ``threat.*`` fields."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from enrichment.intel.indicators import IndicatorIndex, Match
from store.errors import StoreError
from store.event import Event, Value
from store.intel import IntelStore, open_intel

log = logging.getLogger(__name__)


def load_index(intel: IntelStore) -> IndicatorIndex:
    """An index of the latest version of every stored indicator (revoked ones left out)."""
    index = IndicatorIndex()
    for item in intel.latest("indicator"):
        index.add(item.doc, item.feed)
    return index


def threat_fields(matches: Sequence[Match]) -> dict[str, Value]:
    """ECS ``threat.*`` fields for the matches: every indicator id, details of the first."""
    first = matches[0]
    ids = tuple(dict.fromkeys(m.indicator.id for m in matches))
    fields: dict[str, Value] = {
        "threat.indicator.id": ids,
        "threat.indicator.type": first.kind,
        "threat.feed.name": first.indicator.feed,
    }
    if first.indicator.name:
        fields["threat.indicator.name"] = first.indicator.name
    if first.field:
        fields["threat.indicator.matched.field"] = first.field
        fields["threat.indicator.matched.atomic"] = first.atomic
    return fields


class IndicatorEnricher:
    """Adds ``threat.*`` fields to matching events (implements collectors.pipeline.Enricher).

    With an ``intel`` store it reloads its index when the number of stored intel
    objects changed (checked at most every ``refresh_seconds``), so indicators
    imported by another process (``citysoc intel import``) apply to new events
    without a restart; the events stored meanwhile are covered by the retro-hunt.
    """

    def __init__(self, index: IndicatorIndex, intel: IntelStore | None = None, refresh_seconds: float = 60.0) -> None:
        self.index = index
        self.intel = intel
        self.refresh_seconds = refresh_seconds
        self._count = intel.count() if intel is not None else 0
        self._checked = time.monotonic()

    def _refresh(self) -> None:
        assert self.intel is not None
        self._checked = time.monotonic()
        count = self.intel.count()
        if count != self._count:
            self.index, self._count = load_index(self.intel), count
            log.info("indicator index reloaded: %d indicators", len(self.index))

    def enrich(self, event: Event) -> Event:
        if self.intel is not None and time.monotonic() - self._checked >= self.refresh_seconds:
            self._refresh()
        matches = self.index.match(event)
        if not matches:
            return event
        return event.with_fields(threat_fields(matches))


def enricher_for(store: object) -> IndicatorEnricher | None:
    """The enricher for the intel stored beside ``store``; None (logged) when the backend keeps no intel."""
    try:
        intel = open_intel(store)
    except StoreError as exc:
        log.warning("threat-intel matching is off: %s", exc)
        return None
    return IndicatorEnricher(load_index(intel), intel)
