"""The "source silent" alert: collectors.health reports a silent source, this raises the alert.

Implements :class:`collectors.health.SilenceListener`.  The alert has no
events (silence is the finding); its id is derived from the source and the
last time it was seen, so a re-check of the same silence does not alert twice,
and it goes through the incident manager like any other alert.  It names no
host or address, so the silent sources of one incident window share one
"source silent" incident (an outage usually silences several at once).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from collectors.health import SourceStatus
from detections.incidents import IncidentManager
from store.base import Store
from store.event import format_ts, stable_id
from store.models import Alert, Severity

RULE_ID = "citysoc-source-silent"
#: an OT source going quiet may mean a blinded process: one level higher than IT/IoT
SEVERITY = {"ot": Severity.HIGH}


class SourceSilenceAlerter:
    def __init__(self, store: Store, incidents: IncidentManager,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.incidents = incidents
        self.clock = clock

    def on_source_silent(self, status: SourceStatus) -> None:
        exp = status.expectation
        last = format_ts(status.last_seen) if status.last_seen else "never"
        now = self.clock()
        entities = {"service.name": exp.source}
        if exp.area:
            entities["asset.area"] = exp.area
        if exp.domain:
            entities["asset.domain"] = exp.domain
        alert = Alert(
            id="ALR-" + stable_id(RULE_ID, exp.source, last)[:20].upper(),
            rule_id=RULE_ID,
            rule_title="Log source silent",
            severity=SEVERITY.get(exp.domain.lower(), Severity.MEDIUM),
            created=now,
            event_time=status.last_seen or now,
            event_ids=(),
            entities=entities,
            tags=("citysoc.source_health",),
            source="source-health",
            description=(f"source {exp.source} expected every {exp.interval.total_seconds():g} s; last event {last}, "
                         f"quiet for {status.quiet_for.total_seconds():.0f} s"),
        )
        if self.store.add_alert(alert):
            self.incidents.handle(alert)
