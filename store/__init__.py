"""Event model and storage: the lowest layer of CitySOC."""

from store.base import Store, StoredEventListener
from store.errors import EventValidationError, NotFound, StoreError
from store.event import Event
from store.registry import open_store

__all__ = ["Event", "EventValidationError", "NotFound", "Store", "StoreError", "StoredEventListener", "open_store"]
