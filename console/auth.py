"""Console users and access control: passwords, login (with TOTP as second step), roles, agency scope.

Passwords are stored as werkzeug scrypt hashes.  The session holds the user
name and a fingerprint of the password hash, so changing a password ends the
user's other sessions.  ``/api/v1`` also accepts ``Authorization: Bearer``
API tokens (:mod:`console.tokens`); a token request is authenticated by the
token alone, never by a cookie.

Access control is declared on each view with :func:`login_required` or
:func:`roles_required`; both record the view's policy in
:data:`ENDPOINT_POLICY` so a test can prove every endpoint has one.  Admins
pass every role check.  Data is scoped by agency: :func:`agency_scope` gives
the agencies a user may see (``None`` = all), an incident's agencies are its
``entities["asset.agency"]``.

Logins, failed logins, lockouts, logouts and password changes go to the
audit log.  After ``MAX_FAILED_LOGINS`` wrong passwords or codes in a row
the account is locked for ``LOCKOUT_MINUTES``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, cast

from flask import Flask, current_app, g, has_app_context, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
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
from store.models import Incident, User

#: admin, SOC analyst, detection engineer, responder, compliance officer, read-only inspector (supervising authority)
ROLES: tuple[str, ...] = ("admin", "analyst", "engineer", "responder", "compliance", "inspector")
#: Roles that may change incidents (admins may do everything).
WRITE_ROLES: tuple[str, ...] = ("analyst", "responder")
ADMIN_USER = "admin"
MIN_PASSWORD_LENGTH = 12
HASH_METHOD = "scrypt"
MAX_FAILED_LOGINS = 5
LOCKOUT_MINUTES = 15
#: The field of an incident's entities naming the agencies that own its assets.
AGENCY_FIELD = "asset.agency"

#: Policy of each protected view, by ``module.qualname``: the roles it needs, or "any" (any logged-in user).
Policy = tuple[str, ...] | Literal["any"]
ENDPOINT_POLICY: dict[str, Policy] = {}

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_AGENCY = re.compile(r"\S(?:.{0,198}\S)?")
_SESSION_USER = "user"
_SESSION_FINGERPRINT = "pwfp"
_PENDING_USER = "mfa_user"
_PENDING_FINGERPRINT = "mfa_pwfp"
_PENDING_SINCE = "mfa_since"
_PENDING_NEXT = "mfa_next"
#: How long the TOTP step may follow the password step.
MFA_STEP_SECONDS = 300

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


def check_roles(roles: Iterable[str], field: str = "roles") -> tuple[str, ...]:
    """Known roles, deduplicated in order; at least one."""
    wanted = tuple(dict.fromkeys(roles))
    unknown = [role for role in wanted if role not in ROLES]
    if not wanted or unknown:
        raise InvalidInput(field, f"{list(wanted)!r}: give one or more of {', '.join(ROLES)}")
    return wanted


def check_agencies(agencies: Iterable[str], roles: Iterable[str], field: str = "agencies") -> tuple[str, ...]:
    """Agency names, deduplicated; an admin always sees every agency, so admins take none."""
    names = tuple(dict.fromkeys(a.strip() for a in agencies if a.strip()))
    bad = [name for name in names if not _AGENCY.fullmatch(name)]
    if bad:
        raise InvalidInput(field, f"{bad[0]!r} is not an agency name (1-200 characters, no line breaks)")
    if names and "admin" in roles:
        raise InvalidInput(field, "an admin sees every agency: leave the agencies empty or drop the admin role")
    return names


def create_user(
    store: Store,
    username: str,
    password: str,
    roles: Iterable[str],
    must_change_password: bool = False,
    agencies: Iterable[str] = (),
    mfa_required: bool = False,
) -> User:
    """Add a console user; the user name must be new and the roles known."""
    if not _USERNAME.fullmatch(username):
        raise InvalidInput("username", f"{username!r} is not a user name (letters, digits, _ . @ -; 1-64 characters)")
    wanted = check_roles(roles)
    scope = check_agencies(agencies, wanted)
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
        agencies=scope,
        mfa_required=mfa_required,
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


def is_locked(user: User, now: datetime | None = None) -> bool:
    return user.locked_until is not None and (now or datetime.now(UTC)) < user.locked_until


def record_failure(store: Store, user: User, what: str, remote_addr: str | None) -> User:
    """Count a wrong password or code; lock the account after ``MAX_FAILED_LOGINS`` in a row (audited)."""
    failed = user.failed_logins + 1
    locked_until = user.locked_until
    if failed >= MAX_FAILED_LOGINS:
        locked_until = datetime.now(UTC) + timedelta(minutes=LOCKOUT_MINUTES)
        failed = 0
        store.audit(user.username, "auth.lockout", f"user:{user.username}",
                    {"after": what, "minutes": LOCKOUT_MINUTES, "remote_addr": remote_addr or "unknown"})  # fmt: skip
    changed = replace(user, failed_logins=failed, locked_until=locked_until)
    store.put_user(changed)
    return changed


def record_success(store: Store, user: User) -> User:
    if user.failed_logins == 0 and user.locked_until is None:
        return user
    changed = replace(user, failed_logins=0, locked_until=None)
    store.put_user(changed)
    return changed


class LoginThrottle:
    """Failed logins per client address in a sliding window, kept by each console process.

    The account lockout stops guessing one account; this stops one address trying a few
    passwords on many accounts (password spraying).  Thread-safe.
    """

    def __init__(self, limit: int = 20, window: timedelta = timedelta(minutes=15)) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: datetime) -> list[datetime]:
        kept = [t for t in self._failures.get(address, ()) if now - t < self.window]
        if kept:
            self._failures[address] = kept
        else:
            self._failures.pop(address, None)
        return kept

    def blocked(self, address: str, now: datetime | None = None) -> bool:
        with self._lock:
            return len(self._recent(address, now or datetime.now(UTC))) >= self.limit

    def failed(self, address: str, now: datetime | None = None) -> None:
        moment = now or datetime.now(UTC)
        with self._lock:
            self._failures[address] = [*self._recent(address, moment), moment]


_THROTTLE_EXTENSION = "citysoc.login_throttle"


def login_throttle() -> LoginThrottle | None:
    """The app's throttle (None outside a request, e.g. in library use)."""
    if not has_app_context():
        return None
    throttle: LoginThrottle | None = current_app.extensions.get(_THROTTLE_EXTENSION)
    return throttle


def attempt_login(store: Store, username: str, password: str, remote_addr: str | None) -> User | None:
    """Check the password and record the attempt in the audit log (failed ones too, with the reason).

    A disabled or locked account fails like a wrong password (the audit log has the real reason),
    and so does any attempt from an address with too many recent failures (:class:`LoginThrottle`).
    With MFA enabled the user is not logged in yet: :func:`after_password` asks for the code.
    """
    details: dict[str, Any] = {"remote_addr": remote_addr or "unknown"}
    throttle = login_throttle()
    address = remote_addr or "unknown"
    if throttle is not None and throttle.blocked(address):
        store.audit(username or "-", "auth.login_failed", f"user:{username}",
                    {**details, "reason": "too many failed logins from this address"})  # fmt: skip
        return None
    user = authenticate(store, username, password)
    reason = None
    if user is None:
        reason = "wrong user name or password"
        if throttle is not None:
            throttle.failed(address)
        with contextlib.suppress(NotFound):  # unknown user names have no counter to raise
            record_failure(store, store.get_user(username), "password", remote_addr)
    elif user.disabled:
        reason = "account disabled"
    elif is_locked(user):
        reason = "account locked"
    if reason is not None:
        store.audit(username or "-", "auth.login_failed", f"user:{username}", {**details, "reason": reason})
        return None
    assert user is not None
    if user.mfa_enabled:
        store.audit(username, "auth.password_ok", f"user:{username}", details)
        return user
    store.audit(username, "auth.login", f"user:{username}", details)
    return record_success(store, user)


def change_password(store: Store, username: str, current: str, new: str, confirm: str | None = None) -> User:
    user = store.get_user(username)
    if not check_password(user, current):
        raise InvalidInput("current_password", "the current password is wrong")
    if confirm is not None and new != confirm:
        raise InvalidInput("confirm_password", "the new passwords do not match")
    if new == current:
        raise InvalidInput("new_password", "the new password must differ from the current one")
    check_password_policy(new, username)
    changed = replace(user, password_hash=hash_password(new), must_change_password=False)
    store.put_user(changed)
    store.audit(username, "user.password_change", f"user:{username}", {})
    return changed


# roles and agency scope --------------------------------------------------------------------
def has_role(user: User, roles: Iterable[str]) -> bool:
    return "admin" in user.roles or any(role in user.roles for role in roles)


def can_write(user: User | None) -> bool:
    """Whether the user may change incidents (comment, status, assign, verdict)."""
    return user is not None and has_role(user, WRITE_ROLES)


def agency_scope(user: User) -> tuple[str, ...] | None:
    """The agencies whose data the user sees; None = all (admins and users without agencies: the city SOC)."""
    if "admin" in user.roles or not user.agencies:
        return None
    return user.agencies


def incident_agencies(incident: Incident) -> tuple[str, ...]:
    return tuple(incident.entities.get(AGENCY_FIELD, ()))


def in_scope(user: User, agencies: Iterable[str]) -> bool:
    """Whether a record owned by ``agencies`` is visible to the user (records of no agency: city SOC only)."""
    scope = agency_scope(user)
    return scope is None or any(agency in scope for agency in agencies)


def check_incident_scope(user: User, incident: Incident) -> Incident:
    """The incident when the user may see it; NotFound otherwise (as if it did not exist: no id probing)."""
    if not in_scope(user, incident_agencies(incident)):
        raise NotFound("incident", incident.id)
    return incident


def mfa_required_for(user: User) -> bool:
    """Whether the user must use TOTP: set on the user, or for one of its roles (``MFA_REQUIRED_ROLES``)."""
    roles: Iterable[str] = current_app.config.get("MFA_REQUIRED_ROLES", ())
    return user.mfa_required or any(role in user.roles for role in roles)


# sessions ------------------------------------------------------------------------------
def _fingerprint(user: User) -> str:
    # Keyed, because the signed session cookie is readable by its holder.
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, user.password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def login_user(user: User) -> None:
    """Start a fresh session for the user (a new session: nothing of the pre-login one survives)."""
    security.start_session()
    session[_SESSION_USER] = user.username
    session[_SESSION_FINGERPRINT] = _fingerprint(user)
    g.user = user


def after_password(user: User, target: str) -> ResponseReturnValue:
    """Where the browser goes once the password was right: the TOTP step, or in (then MFA setup, password change)."""
    if user.mfa_enabled:
        security.start_session()  # not logged in yet, but a new session all the same
        session[_PENDING_USER] = user.username
        session[_PENDING_FINGERPRINT] = _fingerprint(user)
        session[_PENDING_SINCE] = time.time()
        session[_PENDING_NEXT] = target
        return redirect(url_for("account.mfa_login"))
    login_user(user)
    return redirect(next_page(user, target))


def next_page(user: User, target: str) -> str:
    if mfa_required_for(user) and not user.mfa_enabled:
        return url_for("account.mfa_setup")
    if user.must_change_password:
        return url_for("web.change_password")
    return target


def pending_mfa_user() -> tuple[User, str] | None:
    """The user who passed the password step in this session and must now give a code, with the page to go to."""
    username = session.get(_PENDING_USER)
    since = session.get(_PENDING_SINCE)
    if not isinstance(username, str) or not isinstance(since, (int, float)):
        return None
    if time.time() - since > MFA_STEP_SECONDS:
        return None
    try:
        user = current_store().get_user(username)
    except NotFound:
        return None
    if session.get(_PENDING_FINGERPRINT) != _fingerprint(user) or user.disabled or not user.mfa_enabled:
        return None
    target = session.get(_PENDING_NEXT)
    return user, target if isinstance(target, str) else "/"


def logout_user() -> None:
    user = current_user()
    if user is not None:
        current_store().audit(user.username, "auth.logout", f"user:{user.username}", {})
    security.end_session()
    g.user = None


def current_user() -> User | None:
    user: User | None = g.get("user")
    return user


def bearer_token() -> str | None:
    """The API token of this request: only ``/api/`` accepts tokens (the browser pages stay cookie-only)."""
    if not security.has_bearer_token():
        return None
    return request.headers.get("Authorization", "").partition(" ")[2].strip()


def load_user() -> None:
    """Find the request's user: by API token, else by session; an invalid session is ended."""
    g.user = None
    g.auth_error = None
    if request.endpoint == "static":
        return
    token = bearer_token()
    if token is not None:
        from console import tokens  # tokens builds on this module

        try:
            g.user = tokens.authenticate(current_store(), token)
        except NotAuthenticated as exc:
            g.auth_error = str(exc)
        g.auth_method = "token"
        return
    g.auth_method = "session"
    username = session.get(_SESSION_USER)
    if not isinstance(username, str):
        return
    try:
        user = current_store().get_user(username)
    except NotFound:
        security.end_session()
        return
    if session.get(_SESSION_FINGERPRINT) != _fingerprint(user) or user.disabled:
        security.end_session()
        return
    g.user = user


#: Endpoints a session that still has to set up MFA may use.
MFA_SETUP_ENDPOINTS = frozenset({"account.mfa_setup", "web.logout", "static", "web.healthz", "web.login"})


def enforce_mfa_setup() -> ResponseReturnValue | None:
    """A user who must use MFA but has not enrolled may only enrol (or log out)."""
    user = current_user()
    if user is None or g.get("auth_method") != "session" or request.endpoint in MFA_SETUP_ENDPOINTS:
        return None
    if not mfa_required_for(user) or user.mfa_enabled:
        return None
    if request.path.startswith("/api/"):
        raise PermissionDenied("set up two-factor authentication first (Account → Two-factor authentication)")
    return redirect(url_for("account.mfa_setup"))


# decorators for views --------------------------------------------------------------------
def _login_reason() -> str:
    error = g.get("auth_error")
    if error:
        return str(error)
    if security.session_expired():
        return security.expiry_reason()
    return "log in to continue"


def require_user() -> User:
    """The logged-in user (or the API token's effective user); raises NotAuthenticated without one."""
    user = current_user()
    if user is None:
        raise NotAuthenticated(_login_reason())
    return user


def policy_key(view: Callable[..., Any]) -> str:
    return f"{view.__module__}.{view.__qualname__}"


def policy_of(view: Callable[..., Any]) -> Policy | None:
    """The declared policy of a view function (as registered in the app), None when it declares none."""
    return ENDPOINT_POLICY.get(policy_key(view))


def _register(view: Callable[..., Any], policy: Policy) -> None:
    ENDPOINT_POLICY[policy_key(view)] = policy


def login_required(view: ViewFunc) -> ViewFunc:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_user()
        return view(*args, **kwargs)

    _register(wrapper, "any")
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

        _register(wrapper, tuple(roles))
        return cast(ViewFunc, wrapper)

    return decorator


#: Views that refuse API tokens (``module.qualname``), e.g. creating tokens: a leaked token must not mint more.
SESSION_ONLY: set[str] = set()


def session_only(view: ViewFunc) -> ViewFunc:
    """Refuse (403) requests authenticated by an API token; combine with login_required or roles_required."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("auth_method") == "token":
            raise PermissionDenied("this needs a console session (log in); API tokens cannot do it")
        return view(*args, **kwargs)

    SESSION_ONLY.add(policy_key(wrapper))
    return cast(ViewFunc, wrapper)


def tokens_accepted(view: Callable[..., Any]) -> bool:
    return policy_key(view) not in SESSION_ONLY


def allowed(policy: Policy, roles: Iterable[str]) -> bool:
    """Whether a user with ``roles`` passes ``policy`` (the same rule as the decorators)."""
    if policy == "any":
        return True
    held = tuple(roles)
    return "admin" in held or any(role in held for role in policy)


def _template_context() -> dict[str, Any]:
    user = current_user()
    return {"current_user": user, "can_write": can_write(user), "has_role": has_role}


def configure_auth(app: Flask) -> None:
    # `citysoc serve` takes it from the environment: CITYSOC_MFA_REQUIRED_ROLES=admin,responder
    env_roles = os.environ.get("CITYSOC_MFA_REQUIRED_ROLES", "")
    app.config.setdefault("MFA_REQUIRED_ROLES", tuple(r.strip() for r in env_roles.split(",") if r.strip()))
    unknown = [role for role in app.config["MFA_REQUIRED_ROLES"] if role not in ROLES]
    if isinstance(app.config["MFA_REQUIRED_ROLES"], str) or unknown:
        raise ConfigError(f"MFA_REQUIRED_ROLES must be a list of roles from {', '.join(ROLES)}, "
                          f"not {app.config['MFA_REQUIRED_ROLES']!r}")  # fmt: skip
    app.extensions[_THROTTLE_EXTENSION] = LoginThrottle(int(app.config.get("LOGIN_FAILURES_PER_ADDRESS", 20)))
    app.before_request(load_user)
    app.before_request(enforce_mfa_setup)
    app.context_processor(_template_context)
