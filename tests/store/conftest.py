"""The store contract suite runs on every backend; the embedded one always, others when configured.

Elasticsearch and OpenSearch run only against a real cluster named by
``CITYSOC_ELASTICSEARCH_URL`` / ``CITYSOC_OPENSEARCH_URL`` (e.g.
``elasticsearch://elastic:secret@127.0.0.1:9200``); each test gets its own index
prefix and removes what it created.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.base import Store
from store.sqlite import SQLiteStore

CLUSTER_ENV = {"elasticsearch": "CITYSOC_ELASTICSEARCH_URL", "opensearch": "CITYSOC_OPENSEARCH_URL"}


def cluster_store(backend: str) -> Iterator[Store]:
    """A fresh ElasticStore on the configured cluster, or skip with the reason."""
    env = CLUSTER_ENV[backend]
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} is not set: no {backend} cluster to test the store against")
    from store.elastic import ElasticStore

    scheme, _, rest = url.partition("://")
    prefix = f"citysoc-test-{uuid.uuid4().hex[:10]}"
    rest += ("&" if "?" in rest else "?") + f"prefix={prefix}"
    es = ElasticStore.from_url(scheme, rest)
    try:
        yield es
    finally:
        for path in (
            f"/_data_stream/{prefix}-*",
            f"/{prefix}-*",
            f"/_index_template/{prefix}-*",
            f"/_component_template/{prefix}-*",
        ):
            es.http.request("DELETE", path, params={"expand_wildcards": "all"} if path == f"/{prefix}-*" else None)
        es.close()


@pytest.fixture(params=["sqlite", "elasticsearch", "opensearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        backend = SQLiteStore(tmp_path / "citysoc.db")
        yield backend
        backend.close()
    else:
        yield from cluster_store(request.param)
