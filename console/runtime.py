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
from detections.engine import DetectionEngine
from detections.incidents import IncidentManager
from detections.pack import LoadedRules, default_rule_paths, load_rules
from enrichment.assets import AssetEnricher, AssetRegister
from playbooks.actions import REGISTRY
from playbooks.dispatch import PlaybookDispatcher
from playbooks.model import PlaybookLibrary
from playbooks.worker import create_celery, enqueuer, library_paths
from store.base import Store
from store.registry import home, open_store


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
        self.store.close()


def build_runtime(
    store_url: str | None = None,
    broker_url: str | None = None,
    rule_paths: Sequence[Path] | None = None,
    register: AssetRegister | None = None,
    playbook_dirs: Sequence[Path] | None = None,
    name: str = "citysoc-collector",
) -> Runtime:
    store = open_store(store_url)
    if register is None:
        path = assets_path()
        register = AssetRegister.load(path) if path.exists() else AssetRegister()
    rules = load_rules(rule_paths or default_rule_paths())
    dirs = list(playbook_dirs) if playbook_dirs is not None else library_paths()
    library = PlaybookLibrary.load(dirs, REGISTRY)
    celery = create_celery(broker_url, store_url, dirs)
    dispatcher = PlaybookDispatcher(store, library, REGISTRY, enqueuer(celery))
    incidents = IncidentManager(store, listeners=[dispatcher])
    engine = DetectionEngine(store, rules.ruleset, incidents, rules.correlator, rules.names)
    enrichers: list[Enricher] = [AssetEnricher(register)] if len(register) else []
    pipeline = IngestPipeline(store, enrichers=enrichers, listeners=[engine], name=name)
    return Runtime(store, pipeline, engine, incidents, dispatcher, celery, rules, register)
