"""TOTP two-factor authentication (RFC 6238 over RFC 4226 HOTP): enrolment, the login step, admin resets.

The shared secret is stored encrypted (AES-GCM under a key derived from the
console's secret key) and never shown again after enrolment.  A code is
accepted for the current 30-second step and one step either side (clock
drift), and only once: the last accepted step is kept and older or equal
steps are refused, so a code seen over a shoulder cannot be replayed.  Wrong
codes count towards the same lockout as wrong passwords.  Everything is
audited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from console import auth
from console.services import ConsoleError, InvalidInput
from store.base import Store
from store.models import User

ISSUER = "CitySOC"
DIGITS = 6
PERIOD = 30
#: Steps accepted either side of now (clock drift between phone and server).
WINDOW = 1
_SECRET_BYTES = 20  # 160 bits, as RFC 4226 recommends
_FORMAT = "v1:"


class MFAError(ConsoleError):
    """An MFA secret cannot be used (e.g. encrypted under another console key); says how to fix it."""


# RFC 4226 / RFC 6238 -------------------------------------------------------------------------
def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def time_step(at: datetime, period: int = PERIOD) -> int:
    return int(at.timestamp()) // period


def totp(key: bytes, at: datetime, digits: int = DIGITS, digest: str = "sha1", period: int = PERIOD) -> str:
    return hotp(key, time_step(at, period), digits, digest)


def new_secret() -> str:
    """A random secret in base32, as authenticator apps take it."""
    return base64.b32encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii").rstrip("=")


def secret_key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def matching_step(secret: str, code: str, at: datetime, after_step: int = 0) -> int | None:
    """The time step the code belongs to (within the window, later than ``after_step``), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    key = secret_key(secret)
    now = time_step(at)
    for step in range(now - WINDOW, now + WINDOW + 1):
        if step > after_step and hmac.compare_digest(hotp(key, step), code):
            return step
    return None


def provisioning_uri(secret: str, username: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://`` URI authenticator apps read from the QR code."""
    label = quote(f"{issuer}:{username}", safe="")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": PERIOD})
    return f"otpauth://totp/{label}?{query}"


def qr_data_uri(uri: str) -> str:
    """The URI as a QR code: an SVG ``data:`` URI for an ``<img>`` (allowed by the CSP; no inline markup)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


# secrets at rest ------------------------------------------------------------------------------
def encryption_key(console_key: str) -> bytes:
    """The AES key for TOTP secrets, derived from the console secret key (separate use, separate key)."""
    return hashlib.sha256(b"citysoc totp secrets\x00" + console_key.encode("utf-8")).digest()


def encrypt_secret(secret: str, key: bytes, username: str) -> str:
    nonce = secrets.token_bytes(12)
    # The user name is bound as associated data: a secret copied to another user's record does not decrypt.
    sealed = AESGCM(key).encrypt(nonce, secret.encode("ascii"), username.encode("utf-8"))
    return _FORMAT + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt_secret(stored: str, key: bytes, username: str) -> str:
    if not stored.startswith(_FORMAT):
        raise MFAError(f"user {username!r} has no usable TOTP secret; an admin must reset the user's MFA")
    try:
        raw = base64.urlsafe_b64decode(stored[len(_FORMAT) :])
        return AESGCM(key).decrypt(raw[:12], raw[12:], username.encode("utf-8")).decode("ascii")
    except (InvalidTag, ValueError) as exc:
        raise MFAError(
            f"the TOTP secret of user {username!r} does not decrypt (the console secret key changed?); "
            "an admin must reset the user's MFA"
        ) from exc


# enrolment and login ----------------------------------------------------------------------------
def begin_enrolment(store: Store, user: User, key: bytes) -> tuple[User, str]:
    """A new pending secret for a user without MFA (kept encrypted, active once a code confirms it)."""
    if user.mfa_enabled:
        raise InvalidInput("mfa", "two-factor authentication is already set up; an admin can reset it")
    secret = new_secret()
    pending = replace(user, totp_secret=encrypt_secret(secret, key, user.username), totp_last_step=0)
    store.put_user(pending)
    return pending, secret


def pending_secret(user: User, key: bytes) -> str | None:
    """The secret being enrolled, when there is one."""
    if user.mfa_enabled or not user.totp_secret:
        return None
    return decrypt_secret(user.totp_secret, key, user.username)


def confirm_enrolment(store: Store, user: User, code: str, key: bytes, now: datetime | None = None) -> User:
    """Turn MFA on when ``code`` matches the pending secret."""
    secret = pending_secret(user, key)
    if secret is None:
        raise InvalidInput("code", "start the set-up again: there is no pending secret")
    step = matching_step(secret, code, now or datetime.now(UTC))
    if step is None:
        raise InvalidInput("code", "the code does not match; check the phone's clock and type the current code")
    enabled = replace(user, mfa_enabled=True, totp_last_step=step)
    store.put_user(enabled)
    store.audit(user.username, "user.mfa_enable", f"user:{user.username}", {})
    return enabled


def verify_login(
    store: Store, user: User, code: str, key: bytes, remote_addr: str | None, now: datetime | None = None
) -> User | None:
    """The second login step: the user when the code is right, unused and the account not locked; audited."""
    details = {"remote_addr": remote_addr or "unknown"}
    if auth.is_locked(user, now) or user.disabled:
        reason = "account locked" if not user.disabled else "account disabled"
        store.audit(user.username, "auth.mfa_failed", f"user:{user.username}", {**details, "reason": reason})
        return None
    secret = decrypt_secret(user.totp_secret, key, user.username)
    at = now or datetime.now(UTC)
    step = matching_step(secret, code, at, after_step=user.totp_last_step)
    if step is None:
        replayed = matching_step(secret, code, at) is not None
        reason = "code already used" if replayed else "wrong code"
        store.audit(user.username, "auth.mfa_failed", f"user:{user.username}", {**details, "reason": reason})
        auth.record_failure(store, user, "mfa code", remote_addr)
        return None
    done = replace(user, totp_last_step=step, failed_logins=0, locked_until=None)
    store.put_user(done)
    store.audit(user.username, "auth.login", f"user:{user.username}", {**details, "mfa": True})
    return done


def reset(store: Store, actor: str, user: User) -> User:
    """Remove a user's TOTP secret (lost phone); the user enrols again at next login if MFA is required."""
    cleared = replace(user, mfa_enabled=False, totp_secret="", totp_last_step=0)
    store.put_user(cleared)
    store.audit(actor, "user.mfa_reset", f"user:{user.username}", {})
    return cleared
