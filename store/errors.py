"""Root exception of the store layer; every error says what and where."""

from __future__ import annotations


class StoreError(Exception):
    """Root of all store errors."""


class EventValidationError(StoreError, ValueError):
    """An event does not fit the schema; the message names the field."""


class NotFound(StoreError, LookupError):
    """An object id that does not exist."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id!r} not found")
        self.kind = kind
        self.object_id = object_id


class Conflict(StoreError):
    """A write that would break an invariant (duplicate id, stale version)."""


class AuditChainBroken(StoreError):
    """The hash chain of the audit log does not verify."""
