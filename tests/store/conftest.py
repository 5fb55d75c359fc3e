"""The store contract suite runs on every backend; the embedded one always, others when configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store.base import Store
from store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = SQLiteStore(tmp_path / "citysoc.db")
    yield backend
    backend.close()
