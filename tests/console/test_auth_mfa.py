"""TOTP MFA: RFC 6238 vectors, secrets at rest, enrolment, the login step, replay, lockout, required MFA."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from console import auth, mfa
from console.auth import MAX_FAILED_LOGINS, LoginThrottle
from console.services import InvalidInput, store_of
from tests.console import PASSWORD, add_user, console_app, form_token, logged_in, login

# RFC 6238 appendix B: seeds per algorithm, (unix time, 8-digit code for SHA1, SHA256, SHA512)
SEEDS = {"sha1": b"12345678901234567890", "sha256": b"12345678901234567890123456789012",
         "sha512": b"1234567890123456789012345678901234567890123456789012345678901234"}  # fmt: skip
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt costs ~0.3 s per hash on the shared test machine; these tests are not about the hash
    monkeypatch.setattr(auth, "HASH_METHOD", "pbkdf2:sha256:1000")



@pytest.mark.parametrize(("unix", "sha1", "sha256", "sha512"), VECTORS)
def test_totp_matches_the_rfc_6238_vectors(unix: int, sha1: str, sha256: str, sha512: str) -> None:
    at = datetime.fromtimestamp(unix, UTC)
    for digest, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        assert mfa.totp(SEEDS[digest], at, digits=8, digest=digest) == expected


def test_codes_are_accepted_within_one_step_and_only_after_the_last_used_step() -> None:
    secret = mfa.new_secret()
    key = mfa.secret_key(secret)
    now = datetime(2026, 11, 21, 8, 0, 10, tzinfo=UTC)
    step = mfa.time_step(now)
    assert mfa.matching_step(secret, mfa.totp(key, now), now) == step
    assert mfa.matching_step(secret, mfa.totp(key, now - timedelta(seconds=30)), now) == step - 1
    assert mfa.matching_step(secret, mfa.totp(key, now - timedelta(seconds=90)), now) is None
    assert mfa.matching_step(secret, mfa.totp(key, now), now, after_step=step) is None  # replay
    assert mfa.matching_step(secret, "12345", now) is None


def test_secrets_are_encrypted_and_bound_to_key_and_user() -> None:
    key = mfa.encryption_key("k" * 64)
    sealed = mfa.encrypt_secret("JBSWY3DPEHPK3PXP", key, "ops")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert mfa.decrypt_secret(sealed, key, "ops") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(mfa.MFAError, match="secret key changed"):
        mfa.decrypt_secret(sealed, mfa.encryption_key("x" * 64), "ops")
    with pytest.raises(mfa.MFAError, match="reset"):
        mfa.decrypt_secret(sealed, key, "someone-else")


def test_the_otpauth_uri_and_qr_code() -> None:
    uri = mfa.provisioning_uri("JBSWY3DPEHPK3PXP", "ops lead")
    assert uri.startswith("otpauth://totp/CitySOC%3Aops%20lead?secret=JBSWY3DPEHPK3PXP&issuer=CitySOC")
    assert mfa.qr_data_uri(uri).startswith("data:image/svg+xml")


# the web flow ---------------------------------------------------------------------------------------
@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with console_app(tmp_path) as app:
        yield app


def code_for(secret: str, at: datetime | None = None) -> str:
    return mfa.totp(mfa.secret_key(secret), at or datetime.now(UTC))


def enrol(client: FlaskClient) -> str:
    page = client.get("/account/mfa").get_data(as_text=True)
    match = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
    assert match, "the set-up page shows no secret"
    assert 'src="data:image/svg+xml' in page
    secret = match.group(1)
    # a code one step old: the login right after may then use the current step (codes are single-use)
    earlier = datetime.now(UTC) - timedelta(seconds=30)
    response = client.post("/account/mfa", data={"csrf_token": form_token(page), "code": code_for(secret, earlier)})
    assert response.status_code == 302
    return secret


def mfa_step(client: FlaskClient, code: str) -> int:
    page = client.get("/login/mfa").get_data(as_text=True)
    return client.post("/login/mfa", data={"csrf_token": form_token(page), "code": code}).status_code


def test_enrol_then_log_in_with_password_and_code(app: Flask) -> None:
    client = logged_in(app)
    secret = enrol(client)
    store = store_of(app)
    user = store.get_user("analyst")
    assert user.mfa_enabled and secret not in user.totp_secret
    assert "user.mfa_enable" in [e.action for e in store.audit_entries()]
    fresh = app.test_client()
    response = login(fresh)
    assert response.headers["Location"] == "/login/mfa"
    assert fresh.get("/incidents").status_code == 302  # not logged in between the steps
    assert mfa_step(fresh, "000000" if code_for(secret) != "000000" else "111111") == 401
    assert mfa_step(fresh, code_for(secret)) == 302
    assert fresh.get("/incidents").status_code == 200
    other = app.test_client()
    login(other)
    assert mfa_step(other, code_for(secret)) == 401  # the same code again: replay
    reasons = [e.details.get("reason") for e in store.audit_entries() if e.action == "auth.mfa_failed"]
    assert sorted(reasons) == ["code already used", "wrong code"]


def test_the_code_step_needs_the_password_step_first(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/login/mfa")
    assert response.status_code == 302 and response.headers["Location"] == "/login"


def test_repeated_wrong_codes_lock_the_account(app: Flask) -> None:
    secret = enrol(logged_in(app))
    client = app.test_client()
    login(client)
    wrong = "000000" if code_for(secret) != "000000" else "111111"
    for _ in range(MAX_FAILED_LOGINS):
        assert mfa_step(client, wrong) == 401
    store = store_of(app)
    assert store.get_user("analyst").locked_until is not None
    assert "auth.lockout" in [e.action for e in store.audit_entries()]
    assert mfa_step(client, code_for(secret)) == 401  # locked: even the right code fails
    assert login(app.test_client()).status_code == 401  # and the password step too


def test_repeated_wrong_passwords_lock_the_account(app: Flask) -> None:
    add_user(app)
    for _ in range(MAX_FAILED_LOGINS):
        assert login(app.test_client(), password="wrong password 123").status_code == 401
    assert login(app.test_client(), password=PASSWORD).status_code == 401
    entries = store_of(app).audit_entries()
    assert next(e.details.get("reason") for e in entries if e.action == "auth.login_failed") == "account locked"


def test_required_mfa_forces_enrolment_before_anything_else(tmp_path: Path) -> None:
    with console_app(tmp_path, MFA_REQUIRED_ROLES=["analyst"]) as app:
        add_user(app)
        client = app.test_client()
        assert login(client).headers["Location"] == "/account/mfa"
        assert client.get("/incidents").headers["Location"] == "/account/mfa"
        assert client.get("/api/v1/incidents").status_code == 403
        enrol(client)
        assert client.get("/incidents").status_code == 200


def test_enrolment_rejects_a_wrong_code(app: Flask) -> None:
    client = logged_in(app)
    page = client.get("/account/mfa").get_data(as_text=True)
    response = client.post("/account/mfa", data={"csrf_token": form_token(page), "code": "abcdef"})
    assert response.status_code == 400
    assert not store_of(app).get_user("analyst").mfa_enabled
    add_user(app, "fresh")
    with pytest.raises(InvalidInput, match="no pending secret"):
        mfa.confirm_enrolment(store_of(app), store_of(app).get_user("fresh"), "123456", mfa.encryption_key("s" * 64))


def test_admin_reset_removes_the_secret(app: Flask) -> None:
    enrol(logged_in(app))
    admin = logged_in(app, "boss", ("admin",))
    page = admin.get("/admin/users/analyst").get_data(as_text=True)
    assert admin.post("/admin/users/analyst/mfa-reset", data={"csrf_token": form_token(page)}).status_code == 302
    user = store_of(app).get_user("analyst")
    assert not user.mfa_enabled and user.totp_secret == ""
    assert login(app.test_client()).headers["Location"] == "/incidents"


def test_one_address_failing_on_many_accounts_is_throttled(tmp_path: Path) -> None:
    with console_app(tmp_path, LOGIN_FAILURES_PER_ADDRESS=3) as app:
        for name in ("ana", "bao", "chi", "dung"):
            add_user(app, name)
        for name in ("ana", "bao", "chi"):  # one wrong guess each: no account reaches its lockout
            assert login(app.test_client(), name, "summer2026 password").status_code == 401
        assert login(app.test_client(), "dung", PASSWORD).status_code == 401  # right password, same address
        entry = store_of(app).audit_entries()[0]
        assert (entry.object, entry.details["reason"]) == ("user:dung", "too many failed logins from this address")
        assert store_of(app).get_user("dung").failed_logins == 0


def test_the_throttle_forgets_after_its_window() -> None:
    throttle = LoginThrottle(limit=2, window=timedelta(minutes=15))
    start = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    throttle.failed("10.0.0.9", start)
    throttle.failed("10.0.0.9", start + timedelta(minutes=1))
    assert throttle.blocked("10.0.0.9", start + timedelta(minutes=2))
    assert not throttle.blocked("10.0.0.8", start + timedelta(minutes=2))
    assert not throttle.blocked("10.0.0.9", start + timedelta(minutes=16))
