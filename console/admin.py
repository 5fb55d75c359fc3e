"""Administration behind the admin pages and ``/api/v1/admin``: users, agencies, sources and their health.

Every change is audited with the acting admin, the object and what changed.
An admin cannot disable themself or take away their own admin role (that
could leave the console without an admin).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console import auth, mfa, tokens
from console.services import InvalidInput
from detections.source_health import RULE_ID as SOURCE_SILENT_RULE
from enrichment.assets import AssetRegister, RegisterError
from store.base import Store
from store.errors import NotFound
from store.models import Alert, User
from store.registry import home

#: How far back the sources page counts events.
ACTIVITY_WINDOW = timedelta(hours=24)
#: How many recent alerts are searched for "source silent" ones.
RECENT_ALERTS = 1000


def user_json(user: User) -> dict[str, Any]:
    """A user as the API shows it: never the password hash or the TOTP secret."""
    return {
        "username": user.username,
        "roles": list(user.roles),
        "agencies": list(user.agencies),
        "disabled": user.disabled,
        "mfa_enabled": user.mfa_enabled,
        "mfa_required": user.mfa_required,
        "must_change_password": user.must_change_password,
        "locked_until": user.locked_until.isoformat() if user.locked_until else None,
        "created": user.created.isoformat() if user.created else None,
    }


def add_user(
    store: Store,
    actor: User,
    username: str,
    password: str,
    roles: Iterable[str],
    agencies: Iterable[str] = (),
    mfa_required: bool = False,
) -> User:
    """Create a user who must change the given (initial) password at first login."""
    user = auth.create_user(store, username, password, roles, must_change_password=True, agencies=agencies,
                            mfa_required=mfa_required)  # fmt: skip
    store.audit(actor.username, "user.create", f"user:{username}",
                {"roles": list(user.roles), "agencies": list(user.agencies), "mfa_required": mfa_required})  # fmt: skip
    return user


def update_user(
    store: Store,
    actor: User,
    username: str,
    roles: Sequence[str] | None = None,
    agencies: Sequence[str] | None = None,
    mfa_required: bool | None = None,
    disabled: bool | None = None,
) -> User:
    """Change a user's roles, agencies, MFA requirement or disabled flag (only what is given)."""
    user = store.get_user(username)
    new_roles = auth.check_roles(roles) if roles is not None else user.roles
    new_agencies = auth.check_agencies(agencies if agencies is not None else user.agencies, new_roles)
    if username == actor.username and ("admin" not in new_roles or disabled):
        raise InvalidInput("roles" if disabled is None else "disabled",
                           "you cannot disable yourself or drop your own admin role; ask another admin")  # fmt: skip
    changed = replace(
        user,
        roles=new_roles,
        agencies=new_agencies,
        mfa_required=user.mfa_required if mfa_required is None else mfa_required,
        disabled=user.disabled if disabled is None else disabled,
    )
    if changed == user:
        return user
    store.put_user(changed)
    diff = {name: value for name, value in user_json(changed).items() if value != user_json(user).get(name)}
    store.audit(actor.username, "user.update", f"user:{username}", diff)
    return changed


def unlock_user(store: Store, actor: User, username: str) -> User:
    user = store.get_user(username)
    changed = replace(user, failed_logins=0, locked_until=None)
    store.put_user(changed)
    store.audit(actor.username, "user.unlock", f"user:{username}", {})
    return changed


def reset_mfa(store: Store, actor: User, username: str) -> User:
    return mfa.reset(store, actor.username, store.get_user(username))


def require_mfa_for_role(store: Store, actor: User, role: str) -> list[str]:
    """Require MFA of every current user holding ``role``; returns the users changed."""
    auth.check_roles((role,), "role")
    changed = []
    for user in store.list_users():
        if role in user.roles and not user.mfa_required:
            store.put_user(replace(user, mfa_required=True))
            changed.append(user.username)
    store.audit(actor.username, "user.mfa_require_role", f"role:{role}", {"users": changed})
    return changed


def get_user(store: Store, username: str) -> User:
    try:
        return store.get_user(username)
    except NotFound:
        raise NotFound("user", username) from None


def form_lines(text: str) -> list[str]:
    """Agencies typed one per line."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def form_days(raw: str | None) -> int:
    try:
        return int(raw or tokens.DEFAULT_DAYS)
    except ValueError:
        raise InvalidInput("days", f"{raw!r} is not a whole number of days") from None


# agencies -------------------------------------------------------------------------------------
def register_path(configured: str | None = None) -> Path:
    """The asset register: ``ASSETS_PATH`` config, else ``CITYSOC_ASSETS``, else ``assets.json`` in the home.

    The same rule as ``console.runtime.assets_path`` (not imported: it pulls in the whole runtime).
    """
    return Path(configured or os.environ.get("CITYSOC_ASSETS") or home() / "assets.json")


@dataclass(frozen=True)
class Agency:
    name: str
    assets: int
    users: tuple[str, ...]
    in_register: bool


def load_register(path: Path) -> tuple[AssetRegister, str | None]:
    """The asset register, or an empty one with the reason it could not be read (the page says so)."""
    if not path.exists():
        return AssetRegister(), f"no asset register at {path}"
    try:
        return AssetRegister.load(path), None
    except RegisterError as exc:
        return AssetRegister(), str(exc)


def agencies(store: Store, register: AssetRegister) -> list[Agency]:
    """Agencies of the asset register plus any only assigned to users, with their asset count and users."""
    assets: dict[str, int] = {}
    for asset in register:
        assets[asset.agency] = assets.get(asset.agency, 0) + 1
    members: dict[str, list[str]] = {}
    for user in store.list_users():
        for agency in user.agencies:
            members.setdefault(agency, []).append(user.username)
    names = sorted(set(assets) | set(members), key=str.casefold)
    return [Agency(name, assets.get(name, 0), tuple(members.get(name, ())), name in assets) for name in names]


# sources --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceRow:
    dataset: str
    count: int
    last_seen: datetime
    quiet_for: timedelta


@dataclass(frozen=True)
class SourceHealthView:
    """What the store knows about sources: activity per dataset and the collectors' "source silent" alerts."""

    since: datetime
    sources: tuple[SourceRow, ...]
    silent_alerts: tuple[Alert, ...]


def source_health(store: Store, now: datetime | None = None) -> SourceHealthView:
    moment = now or datetime.now(UTC)
    since = moment - ACTIVITY_WINDOW
    rows = tuple(
        SourceRow(a.dataset, a.count, a.last_seen, moment - a.last_seen)
        for a in sorted(store.source_activity(since), key=lambda a: a.dataset)
    )
    silent = tuple(a for a in store.list_alerts(limit=RECENT_ALERTS) if a.rule_id == SOURCE_SILENT_RULE)
    return SourceHealthView(since, rows, silent)
