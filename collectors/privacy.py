"""Personal-data policy at ingest: mask or pseudonymise fields classified personal or sensitive.

Camera, ALPR, citizen-app and data-platform logs carry personal data (Personal
Data Protection Law 91/2025, Decree 356/2025).  ``store/schema.py`` classifies
every field as public, personal or sensitive; a :class:`PrivacyPolicy` per
source (matched on ``labels.source`` with shell patterns, first match wins)
says what happens to each class:

* ``pseudonymise`` -- a keyed HMAC-SHA256 (``ps:`` + 24 hex digits): the same
  person gets the same pseudonym everywhere, so correlation still works, but
  the value cannot be read back without the key;
* ``mask`` -- the first two characters kept, the rest ``*``;
* ``drop`` -- the field is removed; ``keep`` -- left as is.

``event.original`` (the raw record, sensitive) is kept only where the policy's
``keep_original`` allows it.  Personal values found inside ``message`` are
replaced the same way, since parsers often repeat the user in the message.
The key lives in ``CITYSOC_HOME/privacy.key`` (created with mode 0600); the
policies in a JSON file (see ``docs/collectors.md``).  :class:`PrivacyFilter`
implements the pipeline's ``Enricher`` protocol; the composition root puts it
*last*, after the asset register, so enrichers still see the original values.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.base import CollectorError
from store.event import Event, Value
from store.schema import Classification, lookup

KEY_BYTES = 32
PSEUDONYM_PREFIX = "ps:"
#: values shorter than this are not searched for inside the message (too many false hits)
MIN_SCRUB_LENGTH = 3


class PrivacyError(CollectorError):
    """A privacy policy or key cannot be used."""


class Action(enum.Enum):
    KEEP = "keep"
    MASK = "mask"
    PSEUDONYMISE = "pseudonymise"
    DROP = "drop"


def _action(value: Any, where: str) -> Action:
    try:
        return Action(value)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise PrivacyError(f"{where}: {value!r} is not an action (use one of {known})") from None


@dataclass(frozen=True)
class PrivacyPolicy:
    """What to do with personal and sensitive fields of the sources matching ``source``."""

    source: str = "*"
    personal: Action = Action.PSEUDONYMISE
    sensitive: Action = Action.MASK
    keep_original: bool = False
    #: per-field exceptions, e.g. ``{"user.name": "keep"}`` for an admin-account log
    fields: Mapping[str, Action] = field(default_factory=dict)
    #: days each data class may be kept (enforced by retention jobs of the store, not at ingest)
    retention_days: Mapping[str, int] = field(default_factory=lambda: {"public": 365, "personal": 90,
                                                                        "sensitive": 30})

    def __post_init__(self) -> None:
        for name in self.fields:
            if lookup(name) is None:
                raise PrivacyError(f"privacy policy {self.source!r}: unknown field {name!r}")
        for cls, days in self.retention_days.items():
            if cls not in {c.value for c in Classification} or not isinstance(days, int) or days < 1:
                raise PrivacyError(f"privacy policy {self.source!r}: retention_days[{cls!r}] = {days!r} "
                                   "must be a positive integer for public, personal or sensitive")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> PrivacyPolicy:
        known = {"source", "personal", "sensitive", "keep_original", "fields", "retention_days"}
        unknown = set(data) - known
        if unknown:
            raise PrivacyError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        keep = data.get("keep_original", False)
        if not isinstance(keep, bool):
            raise PrivacyError(f"{where}.keep_original: must be true or false")
        fields = data.get("fields", {})
        retention = data.get("retention_days", {"public": 365, "personal": 90, "sensitive": 30})
        if not isinstance(fields, dict) or not isinstance(retention, dict):
            raise PrivacyError(f"{where}: 'fields' and 'retention_days' must be objects")
        return cls(
            source=str(data.get("source", "*")),
            personal=_action(data.get("personal", "pseudonymise"), f"{where}.personal"),
            sensitive=_action(data.get("sensitive", "mask"), f"{where}.sensitive"),
            keep_original=keep,
            fields={k: _action(v, f"{where}.fields.{k}") for k, v in fields.items()},
            retention_days=dict(retention),
        )

    def action_for(self, name: str, classification: Classification) -> Action:
        if name in self.fields:
            return self.fields[name]
        if classification is Classification.PERSONAL:
            return self.personal
        if classification is Classification.SENSITIVE:
            return self.sensitive
        return Action.KEEP


def load_policies(path: str | Path) -> list[PrivacyPolicy]:
    """Policies from ``{"sources": [{...}, ...]}``; errors name the file and the entry."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise PrivacyError(f"privacy policies {path}: unreadable: {exc}") from exc
    entries = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise PrivacyError(f"privacy policies {path}: expected an object with a 'sources' list")
    policies = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PrivacyError(f"{path}: sources[{index}] must be an object")
        policies.append(PrivacyPolicy.from_dict(entry, f"{path}: sources[{index}]"))
    return policies


def load_key(home: str | Path) -> bytes:
    """The HMAC key in ``home/privacy.key``, created (random, mode 0600) on first use."""
    path = Path(home) / "privacy.key"
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another collector created it first: use theirs
            return load_key(home)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    if len(key) < 16:
        raise PrivacyError(f"privacy key {path} is {len(key)} bytes; it must hold at least 16 random bytes")
    return key


class Pseudonymiser:
    """Keyed, deterministic pseudonyms: equal values give equal pseudonyms under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise PrivacyError("pseudonymiser: the key must hold at least 16 bytes")
        self._key = key

    def __call__(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:24]

    def matches(self, value: str, pseudonym: str) -> bool:
        """Whether ``pseudonym`` stands for ``value`` (the audited "is this the person?" check)."""
        return hmac.compare_digest(self(value), pseudonym)


def mask(value: str) -> str:
    return value[:2] + "*" * (len(value) - 2) if len(value) > 4 else "*" * len(value)


class PrivacyFilter:
    """The ingest step: applies the first policy whose pattern matches the event's ``labels.source``."""

    def __init__(self, policies: Sequence[PrivacyPolicy], key: bytes,
                 default: PrivacyPolicy | None = None) -> None:
        self.policies = list(policies)
        self.default = default or PrivacyPolicy()
        self.pseudonymise = Pseudonymiser(key)

    def policy_for(self, source: str) -> PrivacyPolicy:
        for policy in self.policies:
            if fnmatch.fnmatchcase(source, policy.source):
                return policy
        return self.default

    def _apply(self, action: Action, value: str) -> str:
        if action is Action.MASK:
            return mask(value)
        if action is Action.PSEUDONYMISE:
            return value if value.startswith(PSEUDONYM_PREFIX) else self.pseudonymise(value)
        return value

    def enrich(self, event: Event) -> Event:
        policy = self.policy_for(str(event.fields.get("labels.source", "")))
        changes: dict[str, Value | None] = {}
        replaced: dict[str, str] = {}
        for name, value in event.fields.items():
            spec = lookup(name)
            if spec is None or spec.classification is Classification.PUBLIC:
                continue
            if name == "event.original":
                if not policy.keep_original:
                    changes[name] = None
                continue
            action = policy.action_for(name, spec.classification)
            if action is Action.KEEP:
                continue
            if action is Action.DROP:
                changes[name] = None
                for old in value if isinstance(value, tuple) else (value,):
                    replaced[str(old)] = "[removed]"
                continue
            values = value if isinstance(value, tuple) else (value,)
            new = tuple(self._apply(action, str(v)) for v in values)
            for old, repl in zip(values, new, strict=True):
                replaced[str(old)] = repl
            changes[name] = new if isinstance(value, tuple) else new[0]
        message = event.fields.get("message")
        if isinstance(message, str) and replaced:
            # longest first, so "admin2" is not half-replaced by "admin"
            for old in sorted(replaced, key=len, reverse=True):
                if len(old) >= MIN_SCRUB_LENGTH:
                    message = message.replace(old, replaced[old])
            changes["message"] = message
        return event.replace(**changes) if changes else event
