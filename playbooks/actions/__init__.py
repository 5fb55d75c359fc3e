"""Playbook actions: typed functions, argument schema from the signature, one registration each.

The registry and the decorator are in :mod:`.base`; each module below
registers its actions when imported, and this list is the one place that
imports them all (a duplicate name fails loudly at import).
"""

from __future__ import annotations

from playbooks.actions import contain, escalate, incident, notify, ticket  # noqa: F401 - registers the actions
from playbooks.actions.base import (
    REGISTRY,
    ActionContext,
    ActionError,
    ActionRegistry,
    ActionSpec,
    Impact,
    NotConfigured,
    TransientActionError,
    action,
    idempotency_key,
)

__all__ = [
    "REGISTRY",
    "ActionContext",
    "ActionError",
    "ActionRegistry",
    "ActionSpec",
    "Impact",
    "NotConfigured",
    "TransientActionError",
    "action",
    "idempotency_key",
]
