"""Coverage: devices registered vs. devices reporting, per area and domain.

The system register (:mod:`enrichment.assets`) says which systems and devices
a city has; the events stored since a point in time say which of them
reported (an event carries ``asset.id`` once the asset enricher matched it).
:func:`coverage` joins the two per (area, domain).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from enrichment.assets import AssetRegister
from store.base import Store


@dataclass(frozen=True)
class CoverageRow:
    area: str
    domain: str
    registered: int
    reporting: int
    silent: tuple[str, ...]

    @property
    def percent(self) -> float:
        return 100.0 * self.reporting / self.registered if self.registered else 0.0


def reporting_assets(store: Store, since: datetime) -> set[str]:
    """Asset ids that have at least one stored event since ``since``."""
    return {str(e.fields["asset.id"]) for e in store.iter_events(start=since) if "asset.id" in e.fields}


def coverage(register: AssetRegister, reporting: Iterable[str]) -> list[CoverageRow]:
    seen = set(reporting)
    groups: dict[tuple[str, str], list[str]] = {}
    for asset in register:
        groups.setdefault((asset.area or "-", asset.domain), []).append(asset.id)
    rows = []
    for (area, domain), ids in sorted(groups.items()):
        rows.append(CoverageRow(area, domain, len(ids), sum(1 for i in ids if i in seen),
                                tuple(sorted(i for i in ids if i not in seen))))
    return rows
