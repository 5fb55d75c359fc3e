"""The composition root wires the layers as configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.runtime import build_runtime, playbook_listeners
from detections.distributed import PartitionedDispatcher
from detections.engine import DetectionEngine
from playbooks.dispatch import PlaybookDispatcher


def test_default_runtime_detects_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path))
    monkeypatch.delenv("CITYSOC_DETECTION_PARTITIONS", raising=False)
    runtime = build_runtime()
    assert isinstance(runtime.pipeline.listeners[0], DetectionEngine)
    runtime.close()


def test_partitioned_runtime_sends_events_to_detection_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path))
    monkeypatch.setenv("CITYSOC_DETECTION_PARTITIONS", "4")
    monkeypatch.setenv("CITYSOC_BROKER_URL", "redis://127.0.0.1:1/0")  # not contacted until events flow
    runtime = build_runtime()
    detector = runtime.pipeline.listeners[0]
    assert isinstance(detector, PartitionedDispatcher)
    assert [type(x) for x in playbook_listeners(runtime.store)] == [PlaybookDispatcher]
    runtime.close()
