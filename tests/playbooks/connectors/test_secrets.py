"""Secrets encrypted at rest: the file holds no plain value, the key file is private, redaction masks values."""

from __future__ import annotations

import io
import json
import logging
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from playbooks.connectors.errors import ConnectorError
from playbooks.connectors.redact import RedactingFilter, install, redact, redact_value
from playbooks.connectors.secrets import KEY_ENV, SecretStore

VALUE = "s3cr3t-Tok3n-for-ticketing"
PW = "mqtt-Pa55word-only-in-the-redaction-test"


def test_a_secret_is_stored_encrypted_with_a_private_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = SecretStore(tmp_path)
    store.set("ticketing-token", VALUE)
    raw = (tmp_path / "secrets.json").read_bytes()
    assert VALUE.encode() not in raw and list(json.loads(raw)) == ["ticketing-token"]
    assert stat.S_IMODE((tmp_path / "secrets.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert SecretStore(tmp_path).get("ticketing-token") == VALUE
    assert store.names() == ["ticketing-token"]
    assert store.delete("ticketing-token") and store.names() == []


def test_the_key_may_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    SecretStore(tmp_path).set("smtp-password", VALUE)
    assert not (tmp_path / "secrets.key").exists()
    assert SecretStore(tmp_path).get("smtp-password") == VALUE
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())  # a different key cannot read it
    with pytest.raises(ConnectorError, match="does not decrypt with the current key"):
        SecretStore(tmp_path).get("smtp-password")


def test_a_readable_key_file_and_bad_names_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = SecretStore(tmp_path)
    store.set("a", VALUE)
    (tmp_path / "secrets.key").chmod(0o644)
    with pytest.raises(ConnectorError, match="chmod 600"):
        store.get("a")
    with pytest.raises(ConnectorError, match="secret name"):
        store.set("../etc/passwd", VALUE)
    with pytest.raises(ConnectorError, match=r"is not set .* set-secret missing"):
        store.get("missing")


def test_revealed_secrets_are_masked_in_text_values_and_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = SecretStore(tmp_path)
    store.set("mqtt-password", PW)
    assert redact(f"x {PW} y") == f"x {PW} y"  # not revealed yet: nothing to mask
    store.get("mqtt-password")
    assert redact(f"x {PW} y") == "x [secret:mqtt-password] y"
    assert redact_value({"k": [PW, 3]}) == {"k": ["[secret:mqtt-password]", 3]}
    logger = logging.getLogger("tests.redaction")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="tests.redaction"):
        logger.info("connecting with %s", PW)
    assert PW not in caplog.text and "[secret:mqtt-password]" in caplog.text


def test_installed_on_handlers_it_masks_records_of_every_logger(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = SecretStore(tmp_path)
    store.set("webhook-token", "hook-Secret-Only-Here-99")
    store.get("webhook-token")
    stream = io.StringIO()
    parent = logging.getLogger("tests.redaction.parent")
    handler = logging.StreamHandler(stream)
    parent.addHandler(handler)
    try:
        install(parent)
        logging.getLogger("tests.redaction.parent.child").warning("token=%s", "hook-Secret-Only-Here-99")
    finally:
        parent.removeHandler(handler)
    assert stream.getvalue() == "token=[secret:webhook-token]\n"
