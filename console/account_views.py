"""The user's own security pages: the TOTP login step, MFA set-up, and personal API tokens.

The TOTP step (``/login/mfa``) follows a right password in the same
session (:func:`console.auth.after_password`); it is public in the sense that
no one is logged in yet, but useless without that pending session state.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from console import admin, auth, mfa, tokens
from console.auth import login_required, require_user
from console.services import InvalidInput, current_store

account = Blueprint("account", __name__)


def totp_key() -> bytes:
    return mfa.encryption_key(str(current_app.config["SECRET_KEY"]))


@account.route("/login/mfa", methods=["GET", "POST"])
def mfa_login() -> ResponseReturnValue:
    pending = auth.pending_mfa_user()
    if pending is None:
        flash("Log in with your password first (the code must follow within 5 minutes).", "info")
        return redirect(url_for("web.login"))
    user, target = pending
    if request.method == "GET":
        return render_template("mfa_login.html")
    throttle = auth.login_throttle()
    address = request.remote_addr or "unknown"
    if throttle is not None and throttle.blocked(address):
        reason = "too many failed logins from this address"
        current_store().audit(user.username, "auth.mfa_failed", f"user:{user.username}",
                              {"remote_addr": address, "reason": reason})  # fmt: skip
        flash("Too many failed logins from this address; try again later.", "error")
        return render_template("mfa_login.html"), 429
    try:
        done = mfa.verify_login(current_store(), user, request.form.get("code", ""), totp_key(), address)
    except mfa.MFAError as exc:  # e.g. the console key changed: only an admin can help, so say so
        flash(str(exc), "error")
        return render_template("mfa_login.html"), 409
    if done is None and throttle is not None:
        throttle.failed(address)
    if done is None:
        flash("Wrong or already used code.", "error")
        return render_template("mfa_login.html"), 401
    auth.login_user(done)
    return redirect(auth.next_page(done, target))


@account.route("/account/mfa", methods=["GET", "POST"])
@login_required
def mfa_setup() -> ResponseReturnValue:
    user = require_user()
    store = current_store()
    if user.mfa_enabled:
        return render_template("mfa_setup.html", enabled=True)
    if request.method == "POST":
        try:
            enabled = mfa.confirm_enrolment(store, store.get_user(user.username), request.form.get("code", ""),
                                            totp_key())  # fmt: skip
        except InvalidInput as exc:
            flash(f"Two-factor authentication not set up: {exc.reason}.", "error")
        else:
            flash("Two-factor authentication is on. You will need a code at each login.", "success")
            return redirect(auth.next_page(enabled, url_for("web.incidents")))
    stored = store.get_user(user.username)
    secret = mfa.pending_secret(stored, totp_key()) if stored.totp_secret else None
    if secret is None:
        _, secret = mfa.begin_enrolment(store, stored, totp_key())
    uri = mfa.provisioning_uri(secret, user.username)
    page = render_template("mfa_setup.html", enabled=False, secret=secret, uri=uri, qr=mfa.qr_data_uri(uri),
                           required=auth.mfa_required_for(user))  # fmt: skip
    return page, (400 if request.method == "POST" else 200)


@account.get("/account/tokens")
@login_required
def my_tokens() -> ResponseReturnValue:
    user = require_user()
    return render_template("admin_tokens.html", tokens=current_store().list_api_tokens(user.username),
                           admin_view=False, roles=user.roles, users=[user.username], created=None)  # fmt: skip


@account.post("/account/tokens")
@login_required
def create_my_token() -> ResponseReturnValue:
    user = require_user()
    try:
        new = tokens.create_token(current_store(), user, user, request.form.get("name", "").strip(),
                                  request.form.getlist("roles"), admin.form_lines(request.form.get("agencies", "")),
                                  admin.form_days(request.form.get("days")))  # fmt: skip
    except InvalidInput as exc:
        flash(f"Token not created: {exc}.", "error")
        return redirect(url_for("account.my_tokens"))
    return render_template("admin_tokens.html", tokens=current_store().list_api_tokens(user.username),
                           admin_view=False, roles=user.roles, users=[user.username], created=new)  # fmt: skip


@account.post("/account/tokens/<token_id>/revoke")
@login_required
def revoke_my_token(token_id: str) -> ResponseReturnValue:
    tokens.revoke_token(current_store(), require_user(), token_id)
    flash(f"Token {token_id} revoked.", "success")
    return redirect(url_for("account.my_tokens"))

