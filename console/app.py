"""The Flask application factory of the console.

``create_app`` builds a new application from defaults plus the given config
in named ``configure_*`` steps; nothing here runs at import time.  The one
error handler turns domain errors (store and console) and HTTP errors into a
JSON error under ``/api/`` and an error page elsewhere.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from console import (
    account_views,
    admin_api,
    admin_views,
    api,
    auth,
    compliance_views,
    playbook_views,
    rules_views,
    security,
    services,
    views,
)
from console.services import (
    ConfigError,
    ConsoleError,
    CSRFError,
    InvalidInput,
    NotAuthenticated,
    PermissionDenied,
    bind_store,
)
from enrichment.intel.attack import configured_catalog
from playbooks.connectors.config import config_path
from playbooks.escalation import ConnectorEscalator
from store.errors import Conflict, EventValidationError, NotFound, StoreError
from store.registry import default_url, home, open_store

log = logging.getLogger(__name__)

SIGNING_KEY_FILE = "console_signing_key"

DEFAULTS: Mapping[str, Any] = {
    "SESSION_TIMEOUT_MINUTES": 30,
    "SESSION_COOKIE_NAME": "citysoc_session",
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "TESTING": False,
}

#: Domain errors and what they mean in HTTP: status and machine-readable code.  First match wins.
ERROR_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (NotAuthenticated, 401, "not_authenticated"),
    (PermissionDenied, 403, "forbidden"),
    (CSRFError, 400, "csrf_failed"),
    (InvalidInput, 400, "invalid_input"),
    (EventValidationError, 400, "invalid_event"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (StoreError, 500, "store_error"),
    (ConsoleError, 500, "console_error"),
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A new console application; ``config`` overrides the defaults (``STORE_URL``, ``SECRET_KEY``, ...)."""
    app = Flask(__name__)
    configure_config(app, config or {})
    configure_store(app)
    security.configure_security(app)
    auth.configure_auth(app)
    configure_blueprints(app)
    configure_errors(app)
    return app


def configure_config(app: Flask, config: Mapping[str, Any]) -> None:
    app.config.update(DEFAULTS)
    app.config.update(config)
    app.config.setdefault("STORE_URL", default_url())
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(home())
    minutes = app.config["SESSION_TIMEOUT_MINUTES"]
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
        raise ConfigError(f"SESSION_TIMEOUT_MINUTES must be a positive number of minutes, not {minutes!r}")


def load_secret_key(directory: Path) -> str:
    """The key signing session cookies, kept in ``directory``; created (mode 0600) on first use."""
    path = directory / SIGNING_KEY_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_text(encoding="ascii").strip()
        else:
            key = secrets.token_hex(32)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(key + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot read or create the console secret key {path}: {exc}; set SECRET_KEY") from exc
    if len(key) < 32:
        raise ConfigError(f"the console secret key in {path} is too short; delete the file to make a new one")
    return key


def configure_store(app: Flask) -> None:
    store = open_store(app.config["STORE_URL"])
    bind_store(app, store)
    # ATT&CK bundles (Enterprise, ICS) named by ATTACK_BUNDLES or CITYSOC_ATTACK; without one, ids only
    services.bind_attack(app, configured_catalog(app.config.get("ATTACK_BUNDLES")))
    # manual escalations go through the playbooks' escalate action once connectors are configured
    if config_path(home()).exists():
        services.bind_escalator(app, ConnectorEscalator(store, home()))

    @app.teardown_request
    def release_connection(exc: BaseException | None) -> None:
        # the threaded server runs each request on a new thread: close its connection
        store.release()


def configure_blueprints(app: Flask) -> None:
    app.register_blueprint(views.web)
    app.register_blueprint(api.bp, url_prefix=api.PREFIX)
    app.register_blueprint(rules_views.web)
    app.register_blueprint(rules_views.api, url_prefix=api.PREFIX)
    app.register_blueprint(playbook_views.web)
    app.register_blueprint(playbook_views.api, url_prefix=api.PREFIX)
    # console security: the TOTP step, MFA set-up, own tokens; admin pages; admin and token API
    app.register_blueprint(account_views.account)
    app.register_blueprint(admin_views.admin_web)
    app.register_blueprint(admin_api.admin_api, url_prefix=api.PREFIX)
    # compliance: security-level reports, maturity evidence, the report archive
    app.register_blueprint(compliance_views.web)
    app.register_blueprint(compliance_views.api, url_prefix=api.PREFIX)


def configure_errors(app: Flask) -> None:
    app.register_error_handler(ConsoleError, handle_error)
    app.register_error_handler(StoreError, handle_error)
    app.register_error_handler(HTTPException, handle_error)


def error_status(exc: Exception) -> tuple[int, str, str]:
    """HTTP status, error code and message for an exception."""
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        return status, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name
    for kind, status, code in ERROR_STATUS:
        if isinstance(exc, kind):
            if status >= 500:
                # Internal details (paths, SQL) stay in the log.
                log.error("%s on %s %s", code, request.method, request.path, exc_info=exc)
                return status, code, "the server could not complete the request; see the console log"
            return status, code, str(exc)
    raise exc


def handle_error(exc: Exception) -> ResponseReturnValue:
    status, code, message = error_status(exc)
    if request.path.startswith(api.PREFIX + "/") or request.path == api.PREFIX:
        return api.error_response(status, code, message)
    if isinstance(exc, NotAuthenticated):
        flash(message, "info")
        if request.method == "GET":
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
        return redirect(url_for("web.login"))
    return render_template("error.html", status=status, code=code, message=message), status
