"""Fixtures of the collector tests: a real SQLite store and an ingest pipeline in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.pipeline import IngestPipeline
from store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "citysoc.db")
    yield backend
    backend.close()


@pytest.fixture
def pipeline(store: SQLiteStore) -> IngestPipeline:
    return IngestPipeline(store, name="collector-test")
