"""The composition root: wires the layers together.

Lower layers only define protocols (``Enricher``, ``StoredEventListener``,
``IncidentListener``); this module builds the concrete objects and connects
them: collectors -> enrichment -> store -> detections -> incidents -> playbooks.
The CLI, the web app and the lab call :func:`build_runtime`; nothing else
assembles the pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

from collectors.pipeline import Enricher, IngestPipeline
from collectors.privacy import PrivacyFilter, load_key, load_policies
from detections.anomaly.stream import AnomalyListener, load_stream_models
from detections.engine import DetectionEngine
from detections.incidents import IncidentManager
from detections.intel import IntelAlerter
from detections.pack import LoadedRules, default_rule_paths, load_rules
from detections.rule_state import RuleGate
from detections.worker import create_detection_celery
from detections.worker import dispatcher as detection_dispatcher
from enrichment.assets import AssetEnricher, AssetRegister
from enrichment.intel.enricher import enricher_for
from playbooks.actions import REGISTRY
from playbooks.dispatch import PlaybookDispatcher
from playbooks.model import PlaybookLibrary
from playbooks.worker import create_celery, enqueuer, library_paths
from store.base import Store, StoredEventListener
from store.detection_state import DetectionStateStore
from store.registry import home, open_store
from store.sqlite import SQLiteStore


def assets_path() -> Path:
    return Path(os.environ.get("CITYSOC_ASSETS") or home() / "assets.json")


@dataclass
class Runtime:
    store: Store
    pipeline: IngestPipeline
    engine: DetectionEngine
    incidents: IncidentManager
    dispatcher: PlaybookDispatcher
    celery: Celery
    rules: LoadedRules
    register: AssetRegister = field(default_factory=AssetRegister)

    def close(self) -> None:
        self.pipeline.close()  # parse workers, if any, before the store they feed
        self.store.close()


def build_runtime(
    store_url: str | None = None,
    broker_url: str | None = None,
    rule_paths: Sequence[Path] | None = None,
    register: AssetRegister | None = None,
    playbook_dirs: Sequence[Path] | None = None,
    name: str = "citysoc-collector",
    parse_workers: int = 0,
) -> Runtime:
    store = open_store(store_url)
    if register is None:
        path = assets_path()
        register = AssetRegister.load(path) if path.exists() else AssetRegister()
    # correlation windows survive a restart when the store can hold them (the embedded one)
    state = DetectionStateStore(store.path) if isinstance(store, SQLiteStore) else None
    rules = load_rules(rule_paths or default_rule_paths(), state=state)
    dirs = list(playbook_dirs) if playbook_dirs is not None else library_paths()
    library = PlaybookLibrary.load(dirs, REGISTRY)
    celery = create_celery(broker_url, store_url, dirs)
    dispatcher = PlaybookDispatcher(store, library, REGISTRY, enqueuer(celery))
    incidents = IncidentManager(store, listeners=[dispatcher])
    # disabled rules and exceptions from the console (CITYSOC_HOME), re-read while running
    engine = DetectionEngine(store, rules.ruleset, incidents, rules.correlator, rules.names, gate=RuleGate())
    enrichers: list[Enricher] = [AssetEnricher(register)] if len(register) else []
    intel = enricher_for(store)  # after the asset enricher, so intel alerts carry the asset
    if intel is not None:
        enrichers.append(intel)
    policies = home() / "privacy.json"
    if policies.exists():  # last, so personal data is masked in every field enrichment added
        enrichers.append(PrivacyFilter(load_policies(policies), load_key(home())))
    partitions = int(os.environ.get("CITYSOC_DETECTION_PARTITIONS") or 0)
    # scale-out: stored event ids go to N partitioned detection workers (citysoc detect-worker) instead
    detector: StoredEventListener = (
        detection_dispatcher(create_detection_celery(broker_url, store_url, rule_paths), partitions)
        if partitions > 0
        else engine
    )
    listeners: list[StoredEventListener] = [detector, IntelAlerter(store, incidents)]
    listeners.append(AnomalyListener(load_stream_models(), incidents))  # trained, signed models only
    pipeline = IngestPipeline(store, enrichers=enrichers, listeners=listeners, name=name, parse_workers=parse_workers)
    return Runtime(store, pipeline, engine, incidents, dispatcher, celery, rules, register)


def playbook_listeners(store: Store) -> list[PlaybookDispatcher]:
    """Incident listeners for a detection worker process: start playbooks as the in-process engine does."""
    dirs = library_paths()
    library = PlaybookLibrary.load(dirs, REGISTRY)
    return [PlaybookDispatcher(store, library, REGISTRY, enqueuer(create_celery(None, None, dirs)))]
