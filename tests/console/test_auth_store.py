"""The store side of console security: user security fields, the users-table migration, API token records."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from store.errors import NotFound
from store.models import ApiToken, User
from store.sqlite import SQLiteStore
from tests.helpers import T0

OLD_USERS = """
CREATE TABLE users (
    username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, roles TEXT NOT NULL,
    must_change_password INTEGER NOT NULL, created TEXT NOT NULL
);
INSERT INTO users VALUES ('ops', 'scrypt:hash', '["analyst"]', 0, '2026-01-02T03:04:05.000000Z');
"""


def test_user_security_fields_round_trip(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    user = User("resp.water", "scrypt:x", ("responder",), False, T0, agencies=("Hanoi Water Company",),
                disabled=True, mfa_required=True, mfa_enabled=True, totp_secret="v1:abc", totp_last_step=99,
                failed_logins=3, locked_until=T0 + timedelta(minutes=15))  # fmt: skip
    store.put_user(user)
    assert store.get_user("resp.water") == user
    store.put_user(replace(user, locked_until=None, agencies=()))
    assert store.get_user("resp.water").locked_until is None
    assert store.get_user("resp.water").agencies == ()
    store.close()


def test_a_database_of_the_old_version_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_USERS)
    store = SQLiteStore(path)
    user = store.get_user("ops")
    assert (user.roles, user.agencies, user.mfa_enabled, user.disabled, user.locked_until) == (
        ("analyst",), (), False, False, None)
    store.put_user(replace(user, agencies=("Hanoi Metro",)))
    store.close()
    again = SQLiteStore(path)  # the migration is idempotent
    assert again.get_user("ops").agencies == ("Hanoi Metro",)
    again.close()


def test_api_token_records(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    first = ApiToken("a1", "siem export", "ops", "h1", ("analyst",), (), T0, T0 + timedelta(days=90))
    second = ApiToken("b2", "water bot", "resp", "h2", ("responder",), ("Hanoi Water Company",),
                      T0 + timedelta(hours=1))  # fmt: skip
    store.put_api_token(first)
    store.put_api_token(second)
    assert store.get_api_token("a1") == first
    assert [t.id for t in store.list_api_tokens()] == ["b2", "a1"]
    assert [t.id for t in store.list_api_tokens("ops")] == ["a1"]
    store.put_api_token(replace(first, revoked=T0 + timedelta(days=1)))
    store.touch_api_token("a1", T0 + timedelta(days=2))  # a use after revocation must not undo it
    token = store.get_api_token("a1")
    assert token.revoked == T0 + timedelta(days=1)
    assert token.last_used == T0 + timedelta(days=2)
    with pytest.raises(NotFound):
        store.get_api_token("nope")
    store.close()
