"""Starting playbooks when incidents match their triggers.

:class:`PlaybookDispatcher` implements :class:`detections.incidents.IncidentListener`;
the composition root gives it an ``enqueue`` callable (Celery ``send_task`` of
the run task) that is called only after the run is committed to the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from playbooks.actions import ActionRegistry
from playbooks.model import PlaybookLibrary
from playbooks.runner import new_run
from store.base import Store
from store.models import Alert, Incident

log = logging.getLogger(__name__)


class PlaybookDispatcher:
    def __init__(
        self, store: Store, library: PlaybookLibrary, registry: ActionRegistry, enqueue: Callable[[str], None]
    ) -> None:
        self.store = store
        self.library = library
        self.registry = registry
        self.enqueue = enqueue

    def on_incident_alert(self, incident: Incident, alert: Alert, created: bool) -> None:
        self.dispatch(incident, alert)

    def dispatch(self, incident: Incident, alert: Alert) -> list[str]:
        """Start every matching playbook not yet run on this incident; returns the new run ids."""
        started = {run.playbook for run in self.store.list_runs(incident_id=incident.id) if not run.drill}
        run_ids = []
        for playbook in self.library:
            if playbook.id in started or not playbook.trigger.matches(incident, alert, self.store):
                continue
            run = new_run(self.store, playbook, incident.id, self.registry)
            log.info("playbook %s triggered on %s as %s", playbook.id, incident.id, run.id)
            self.enqueue(run.id)
            run_ids.append(run.id)
        return run_ids

    def resume(self, run_id: str) -> None:
        """Drive a run again (after an approval decision); implements :class:`playbooks.approvals.RunResumer`."""
        self.enqueue(run_id)
