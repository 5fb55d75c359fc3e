"""Store backends by name, and opening the configured one.

A backend is a :class:`store.base.Store` subclass plus one registration,
either here for the built-in ones or through the ``citysoc.stores`` entry-point
group for plug-ins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from store.base import Store
from store.errors import StoreError
from store.sqlite import SQLiteStore

BackendFactory = Callable[[str], Store]

_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    if scheme in _BACKENDS:
        raise StoreError(f"store backend {scheme!r} is registered twice")
    _BACKENDS[scheme] = factory


def home() -> Path:
    """The data directory: ``CITYSOC_HOME``, default ``~/.citysoc``."""
    return Path(os.environ.get("CITYSOC_HOME") or Path.home() / ".citysoc").expanduser()


def default_url() -> str:
    return os.environ.get("CITYSOC_STORE_URL") or f"sqlite:///{home() / 'citysoc.db'}"


def open_store(url: str | None = None) -> Store:
    """Open the store at ``url`` (``scheme://rest``); default: the embedded SQLite file."""
    url = url or default_url()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StoreError(f"store URL {url!r} has no scheme (e.g. sqlite:///path/citysoc.db)")
    factory = _BACKENDS.get(scheme)
    if factory is None:
        for ep in entry_points(group="citysoc.stores"):
            if ep.name == scheme:
                factory = ep.load()
                break
    if factory is None:
        known = ", ".join(sorted(_BACKENDS))
        raise StoreError(f"no store backend for scheme {scheme!r} (known: {known})")
    return factory(rest)


def _sqlite(rest: str) -> Store:
    # sqlite:///abs/path -> rest == "/abs/path"
    return SQLiteStore(rest)


register_backend("sqlite", _sqlite)


def _elastic(scheme: str) -> BackendFactory:
    def factory(rest: str) -> Store:
        from store.elastic import ElasticStore  # imported on use: the clients are only needed for a cluster

        return ElasticStore.from_url(scheme, rest)

    return factory


for _scheme in ("elasticsearch", "elasticsearch+https", "opensearch", "opensearch+https"):
    register_backend(_scheme, _elastic(_scheme))
