"""Mail through a real SMTP sink (aiosmtpd): authentication with a stored secret, no header injection."""

from __future__ import annotations

import email
import email.policy
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from playbooks.connectors.config import SmtpConfig
from playbooks.connectors.errors import ConnectorError
from playbooks.connectors.secrets import KEY_ENV, SecretStore
from playbooks.connectors.smtp import build_message, one_line, recipients, send_mail
from tests.playbooks.connectors.receivers import smtp_sink
from tests.playbooks.connectors.test_http import self_signed
from tests.services import free_port


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SecretStore:
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = SecretStore(tmp_path)
    store.set("smtp-password", "smtp-Pw-77x")
    return store


def test_login_with_the_stored_secret_and_delivery(secrets: SecretStore) -> None:
    with smtp_sink({"citysoc": "smtp-Pw-77x"}) as sink:
        config = SmtpConfig("mail", "127.0.0.1", "soc@city.example", port=sink.port, security="none",
                            username="citysoc", password_secret="smtp-password")
        message = build_message(config, ["duty@city.example"], "Camera brute force", "Body line", "run/step")
        assert send_mail(config, secrets, message, ["duty@city.example"]) == {}
        wrong = SmtpConfig("mail", "127.0.0.1", "soc@city.example", port=sink.port, security="none",
                           username="someone-else", password_secret="smtp-password")
        with pytest.raises(ConnectorError, match="authentication refused"):
            send_mail(wrong, secrets, message, ["duty@city.example"])
    assert sink.logins[0] == ("citysoc", "smtp-Pw-77x")
    [(sender, rcpts, raw)] = sink.messages
    assert (sender, rcpts) == ("soc@city.example", ["duty@city.example"])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Camera brute force"
    assert parsed.get_content().strip() == "Body line"


def test_header_injection_stays_in_the_subject(secrets: SecretStore) -> None:
    evil = "Alert\r\nBcc: attacker@evil.example\r\nX-Evil: 1\n\nbody"
    with smtp_sink() as sink:
        config = SmtpConfig("mail", "127.0.0.1", "soc@city.example", port=sink.port, security="none")
        message = build_message(config, ["duty@city.example"], evil, "line\r\n.\r\nQUIT\r\n", "k")
        send_mail(config, secrets, message, ["duty@city.example"])
    [(_, rcpts, raw)] = sink.messages
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert rcpts == ["duty@city.example"]
    assert parsed["Subject"] == "Alert Bcc: attacker@evil.example X-Evil: 1 body"
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert "QUIT" in parsed.get_content()  # the lone dot did not end DATA: the text arrived as text


def test_recipients_must_be_plain_addresses() -> None:
    assert recipients("a@city.example, b@city.example") == ["a@city.example", "b@city.example"]
    for bad in ("a@city.example\r\nRCPT TO:<x@evil>", "<a@b.c>", "Name <a@b.c>", ""):
        with pytest.raises(ConnectorError):
            recipients(bad)
    assert one_line("a\u2028b\x00c\td") == "a b c d"


def test_starttls_verifies_the_certificate(tmp_path: Path, secrets: SecretStore) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    got: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.append(bytes(envelope.original_content))
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True)
    controller.start()
    try:
        untrusted = SmtpConfig("mail", "127.0.0.1", "soc@city.example", port=port, security="starttls")
        message = build_message(untrusted, ["duty@city.example"], "s", "b", "k")
        with pytest.raises(ConnectorError, match="TLS verification failed"):
            send_mail(untrusted, secrets, message, ["duty@city.example"])
        assert got == []
        trusted = SmtpConfig("mail", "127.0.0.1", "soc@city.example", port=port, security="starttls",
                             ca_file=str(cert))
        assert send_mail(trusted, secrets, message, ["duty@city.example"]) == {}
    finally:
        controller.stop()
    assert len(got) == 1
