"""Console users: password hashing, login and logout, and the login and role checks for views.

Passwords are stored as werkzeug scrypt hashes.  The session holds the user
name and a fingerprint of the password hash, so changing a password ends the
user's other sessions.  Logins, failed logins, logouts and password changes
go to the audit log.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from flask import Flask, current_app, g, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from console import security
from console.services import (
    ConfigError,
    InvalidInput,
    NotAuthenticated,
    PermissionDenied,
    current_store,
)
from store.base import Store
from store.errors import Conflict, NotFound
from store.models import User

ROLES: tuple[str, ...] = ("admin", "analyst", "viewer")
#: Roles that may change incidents (admins may do everything).
WRITE_ROLES: tuple[str, ...] = ("analyst",)
ADMIN_USER = "admin"
MIN_PASSWORD_LENGTH = 12
HASH_METHOD = "scrypt"

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_SESSION_USER = "user"
_SESSION_FINGERPRINT = "pwfp"

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., Any])


# passwords and users ----------------------------------------------------------------
def hash_password(password: str) -> str:
    return generate_password_hash(password, method=HASH_METHOD)


def check_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_password_policy(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password", f"use at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip().lower() == username.lower():
        raise InvalidInput("password", "the password must not be the user name")


def create_user(
    store: Store,
    username: str,
    password: str,
    roles: Iterable[str],
    must_change_password: bool = False,
) -> User:
    """Add a console user; the user name must be new and the roles known."""
    if not _USERNAME.fullmatch(username):
        raise InvalidInput("username", f"{username!r} is not a user name (letters, digits, _ . @ -; 1-64 characters)")
    wanted = tuple(dict.fromkeys(roles))
    unknown = [role for role in wanted if role not in ROLES]
    if not wanted or unknown:
        raise InvalidInput("roles", f"{list(wanted)!r}: give one or more of {', '.join(ROLES)}")
    check_password_policy(password, username)
    try:
        store.get_user(username)
    except NotFound:
        pass
    else:
        raise Conflict(f"user {username!r} exists already")
    user = User(
        username=username,
        password_hash=hash_password(password),
        roles=wanted,
        must_change_password=must_change_password,
        created=datetime.now(UTC),
    )
    store.put_user(user)
    return user


def ensure_admin(store: Store) -> str | None:
    """Create user ``admin`` with a random password when there is no user yet; returns that password."""
    if store.list_users():
        return None
    password = secrets.token_urlsafe(18)
    create_user(store, ADMIN_USER, password, ("admin",), must_change_password=True)
    store.audit("system", "user.create", f"user:{ADMIN_USER}", {"roles": ["admin"], "must_change_password": True})
    return password


def authenticate(store: Store, username: str, password: str) -> User | None:
    """The user when the password is right; None otherwise (in about the same time either way)."""
    try:
        user = store.get_user(username)
    except NotFound:
        check_password_hash(_dummy_hash(), password)
        return None
    return user if check_password(user, password) else None


def attempt_login(store: Store, username: str, password: str, remote_addr: str | None) -> User | None:
    """Authenticate and record the attempt in the audit log (failed ones too)."""
    user = authenticate(store, username, password)
    action = "auth.login" if user is not None else "auth.login_failed"
    store.audit(username or "-", action, f"user:{username}", {"remote_addr": remote_addr or "unknown"})
    return user


def change_password(store: Store, username: str, current: str, new: str, confirm: str | None = None) -> User:
    user = store.get_user(username)
    if not check_password(user, current):
        raise InvalidInput("current_password", "the current password is wrong")
    if confirm is not None and new != confirm:
        raise InvalidInput("confirm_password", "the new passwords do not match")
    if new == current:
        raise InvalidInput("new_password", "the new password must differ from the current one")
    check_password_policy(new, username)
    changed = User(
        username=user.username,
        password_hash=hash_password(new),
        roles=user.roles,
        must_change_password=False,
        created=user.created,
    )
    store.put_user(changed)
    store.audit(username, "user.password_change", f"user:{username}", {})
    return changed


# sessions ------------------------------------------------------------------------------
def _fingerprint(user: User) -> str:
    # Keyed, because the signed session cookie is readable by its holder.
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, user.password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def login_user(user: User) -> None:
    security.start_session()
    session[_SESSION_USER] = user.username
    session[_SESSION_FINGERPRINT] = _fingerprint(user)
    g.user = user


def logout_user() -> None:
    user = current_user()
    if user is not None:
        current_store().audit(user.username, "auth.logout", f"user:{user.username}", {})
    security.end_session()
    g.user = None


def current_user() -> User | None:
    user: User | None = g.get("user")
    return user


def has_role(user: User, roles: Iterable[str]) -> bool:
    return "admin" in user.roles or any(role in user.roles for role in roles)


def can_write(user: User | None) -> bool:
    return user is not None and has_role(user, WRITE_ROLES)


def load_user() -> None:
    """Find the session's user; a session of a removed user or an old password is ended."""
    g.user = None
    if request.endpoint == "static":
        return
    username = session.get(_SESSION_USER)
    if not isinstance(username, str):
        return
    try:
        user = current_store().get_user(username)
    except NotFound:
        security.end_session()
        return
    if session.get(_SESSION_FINGERPRINT) != _fingerprint(user):
        security.end_session()
        return
    g.user = user


# decorators for views --------------------------------------------------------------------
def _login_reason() -> str:
    if security.session_expired():
        return "your session expired after a period of inactivity; log in again"
    return "log in to continue"


def require_user() -> User:
    """The logged-in user; raises NotAuthenticated without one."""
    user = current_user()
    if user is None:
        raise NotAuthenticated(_login_reason())
    return user


def login_required(view: ViewFunc) -> ViewFunc:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_user()
        return view(*args, **kwargs)

    return cast(ViewFunc, wrapper)


def roles_required(*roles: str) -> Callable[[ViewFunc], ViewFunc]:
    """Login plus one of ``roles`` (admins pass every role check)."""
    unknown = [role for role in roles if role not in ROLES]
    if not roles or unknown:
        raise ConfigError(f"roles_required({', '.join(roles)}): roles must be some of {', '.join(ROLES)}")

    def decorator(view: ViewFunc) -> ViewFunc:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = require_user()
            if not has_role(user, roles):
                raise PermissionDenied(f"this needs the role {' or '.join(roles)}")
            return view(*args, **kwargs)

        return cast(ViewFunc, wrapper)

    return decorator


def _template_context() -> dict[str, Any]:
    user = current_user()
    return {"current_user": user, "can_write": can_write(user)}


def configure_auth(app: Flask) -> None:
    app.before_request(load_user)
    app.context_processor(_template_context)
