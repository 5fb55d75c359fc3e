"""Alerts from threat-intel matches: live (events stored with ``threat.*`` fields) and from retro-hunts.

The :class:`IntelAlerter` is a :class:`store.base.StoredEventListener`; the
composition root registers it beside the detection engine.  A retro-hunt's hits
go through :meth:`IntelAlerter.on_hits`.  Both raise one alert per event and
indicator set (source ``intel``), deduplicated by a stable id, and hand it to the
:class:`detections.incidents.IncidentManager`, so an indicator that arrives days
after the event still opens (or joins) the incident of the entity it hit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone

from detections.engine import entities_of
from detections.incidents import IncidentManager
from enrichment.intel.retrohunt import Hit
from store.base import Store
from store.event import Event, stable_id
from store.models import Alert, Severity

RULE_ID = "intel-indicator-match"


class IntelAlerter:
    """Turns indicator matches on stored events into alerts and incidents."""

    def __init__(
        self,
        store: Store,
        incidents: IncidentManager,
        severity: Severity = Severity.HIGH,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.store = store
        self.incidents = incidents
        self.severity = severity
        self.clock = clock

    def on_events_stored(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.get("threat.indicator.id"):
                self.alert(event, retro=False)

    def on_hits(self, hits: Iterable[Hit]) -> list[Alert]:
        """Alerts for retro-hunt hits (events already stored, indicators new)."""
        return [alert for hit in hits if (alert := self.alert(hit.event, retro=True)) is not None]

    def alert(self, event: Event, retro: bool) -> Alert | None:
        """One alert for ``event`` (which carries ``threat.*`` fields); None if it alerted before."""
        ids = tuple(event.get("threat.indicator.id") or ())
        name = event.get("threat.indicator.name") or ids[0]
        atomic = event.get("threat.indicator.matched.atomic")
        how = "retro-hunt" if retro else "at ingest"
        alert = Alert(
            id="ALR-" + stable_id(RULE_ID, event.id, *sorted(ids))[:20].upper(),
            rule_id=RULE_ID,
            rule_title=f"Threat-intel indicator matched: {name}",
            severity=self.severity,
            created=self.clock(),
            event_time=event.timestamp,
            event_ids=(event.id,),
            entities=entities_of([event]),
            tags=tuple(f"stix.{i}" for i in ids),
            source="intel",
            description=(
                f"Event {event.id} matched {len(ids)} indicator(s) {how}"
                + (f" on {event.get('threat.indicator.matched.field')} = {atomic}" if atomic else "")
                + f" (feed {event.get('threat.feed.name', '?')})."
            ),
        )
        if not self.store.add_alert(alert):
            return None
        self.incidents.handle(alert)
        return alert
