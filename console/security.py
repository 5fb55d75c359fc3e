"""Browser-facing protections: CSRF tokens, security headers, session cookie, idle and absolute timeouts.

The session is a signed cookie.  It carries a CSRF token that every
state-changing request must echo (form field or header), the time of the
last request, so an idle session ends after ``SESSION_TIMEOUT_MINUTES`` even
when an old cookie is replayed, and the time of the login, so any session ends
after ``SESSION_MAX_HOURS``.  API requests with ``Authorization: Bearer`` are
authenticated by the token alone (never by the cookie), so they need no CSRF
token: a browser cannot be made to send that header cross-site.
"""

from __future__ import annotations

import hmac
import secrets
import time
from datetime import timedelta

from flask import Flask, Response, current_app, g, request, session

from console.services import ConfigError, CSRFError

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_CSRF_KEY = "csrf"
_SEEN_KEY = "seen"
_BORN_KEY = "born"


def has_bearer_token() -> bool:
    """Whether this is an API request carrying a bearer token (which then is its only credential)."""
    if not request.path.startswith("/api/"):
        return False
    scheme, _, _ = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer"


def csrf_token() -> str:
    """The session's CSRF token, created on first use."""
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_KEY] = token
    return token


def start_session() -> None:
    """Begin a fresh session (at login): nothing of the old one survives, new CSRF token."""
    session.clear()
    session.permanent = True
    session[_CSRF_KEY] = secrets.token_urlsafe(32)
    session[_SEEN_KEY] = session[_BORN_KEY] = time.time()


def end_session() -> None:
    session.clear()


def session_expired() -> bool:
    """Whether this request found an idle or too old session and ended it."""
    return bool(g.get("session_expired", False))


def expiry_reason() -> str:
    if g.get("session_expired") == "lifetime":
        hours = current_app.config["SESSION_MAX_HOURS"]
        return f"your session reached its maximum lifetime of {hours} hours; log in again"
    return "your session expired after a period of inactivity; log in again"


def enforce_idle_timeout() -> None:
    """End a session idle longer than ``SESSION_TIMEOUT_MINUTES`` or older than ``SESSION_MAX_HOURS``."""
    if request.endpoint == "static" or _SEEN_KEY not in session or has_bearer_token():
        return
    timeout = float(current_app.config["SESSION_TIMEOUT_MINUTES"]) * 60
    lifetime = float(current_app.config["SESSION_MAX_HOURS"]) * 3600
    now = time.time()
    seen = session.get(_SEEN_KEY)
    born = session.get(_BORN_KEY)
    expired = None
    if not isinstance(seen, (int, float)) or now - seen > timeout:
        expired = "idle"
    elif not isinstance(born, (int, float)) or now - born > lifetime:
        expired = "lifetime"
    if expired is not None:
        # Keep the CSRF token so a form posted after the timeout leads to the login page, not a CSRF error.
        token = session.get(_CSRF_KEY)
        session.clear()
        if isinstance(token, str):
            session[_CSRF_KEY] = token
        g.session_expired = expired
        return
    session[_SEEN_KEY] = now


def check_csrf() -> None:
    if request.method in SAFE_METHODS or has_bearer_token():
        return
    expected = session.get(_CSRF_KEY)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not sent:
        raise CSRFError("the request has no CSRF token; reload the page and try again")
    if not hmac.compare_digest(expected.encode(), sent.encode()):
        raise CSRFError("the CSRF token does not match this session; reload the page and try again")


def set_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if request.endpoint != "static":
        # Pages and API answers hold incident data: never keep them in shared or browser caches.
        response.headers["Cache-Control"] = "no-store"
    return response


def configure_security(app: Flask) -> None:
    app.config.setdefault("SESSION_MAX_HOURS", 12)
    hours = app.config["SESSION_MAX_HOURS"]
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0:
        raise ConfigError(f"SESSION_MAX_HOURS must be a positive number of hours, not {hours!r}")
    minutes = app.config["SESSION_TIMEOUT_MINUTES"]
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=minutes),
    )
    app.before_request(enforce_idle_timeout)
    app.before_request(check_csrf)
    app.after_request(set_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["csrf_field"] = CSRF_FIELD
