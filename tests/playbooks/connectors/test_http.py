"""The HTTP client against real servers: idempotency key, auth, no redirects, error classes, TLS verification."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from playbooks.connectors.config import HttpAuth, HttpConfig
from playbooks.connectors.errors import ConnectorError, TransientConnectorError
from playbooks.connectors.http import path_segment, request_json
from playbooks.connectors.secrets import KEY_ENV, SecretStore
from tests.playbooks.connectors.receivers import HttpReceiver, Received, http_receiver
from tests.services import free_port


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SecretStore:
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = SecretStore(tmp_path)
    store.set("api-token", "tok-9f8e7d6c5b4a")
    store.set("api-password", "pw-0a1b2c3d4e")
    return store


def test_json_body_idempotency_key_and_bearer_auth(receiver: HttpReceiver, secrets: SecretStore) -> None:
    config = HttpConfig("t", receiver.url + "/issues", auth=HttpAuth("bearer", "api-token"), headers={"X-Tenant": "hn"})
    response = request_json(config, secrets, "POST", {"title": "Tiếng Việt"}, "key-1")
    assert response.status == 201 and response.json() == {"id": "T-1"}
    [got] = receiver.requests
    assert (got.method, got.path) == ("POST", "/issues")
    assert got.header("Idempotency-Key") == "key-1"
    assert got.header("Authorization") == "Bearer tok-9f8e7d6c5b4a"
    assert got.header("X-Tenant") == "hn"
    assert got.header("Content-Type") == "application/json; charset=utf-8"
    assert got.json() == {"title": "Tiếng Việt"}


def test_basic_and_header_auth(receiver: HttpReceiver, secrets: SecretStore) -> None:
    basic = HttpConfig("b", receiver.url, auth=HttpAuth("basic", "api-password", username="soar"))
    header = HttpConfig("h", receiver.url, auth=HttpAuth("header", "api-token", header="X-Api-Key"))
    request_json(basic, secrets, "POST", {}, "k")
    request_json(header, secrets, "POST", {}, "k")
    assert receiver.requests[0].header("Authorization") == "Basic c29hcjpwdy0wYTFiMmMzZDRl"  # soar:pw-0a1b2c3d4e
    assert receiver.requests[1].header("X-Api-Key") == "tok-9f8e7d6c5b4a"


def test_errors_are_classified_and_redirects_refused(receiver: HttpReceiver, secrets: SecretStore) -> None:
    config = HttpConfig("t", receiver.url)
    receiver.answers["/busy"] = (503, {"error": "busy"})
    receiver.answers["/bad"] = (422, {"error": "title missing"})
    receiver.answers["/moved"] = (302, {"location": "http://elsewhere.example/steal"})
    with pytest.raises(TransientConnectorError, match="HTTP 503"):
        request_json(config, secrets, "POST", {}, "k", url=receiver.url + "/busy")
    with pytest.raises(ConnectorError, match=r"HTTP 422 .*title missing") as info:
        request_json(config, secrets, "POST", {}, "k", url=receiver.url + "/bad")
    assert not isinstance(info.value, TransientConnectorError)
    with pytest.raises(ConnectorError, match=r"302 redirect .* not followed"):
        request_json(config, secrets, "POST", {}, "k", url=receiver.url + "/moved")
    with pytest.raises(TransientConnectorError, match="Connection refused"):
        request_json(HttpConfig("t", f"http://127.0.0.1:{free_port()}/"), secrets, "POST", {}, "k")


def test_a_secret_echoed_by_the_receiver_is_masked_in_the_error(receiver: HttpReceiver, secrets: SecretStore) -> None:
    def echo(got: Received) -> tuple[int, Any]:
        return 500, {"debug": f"bad auth header {got.header('Authorization')}"}

    receiver.responder = echo
    config = HttpConfig("t", receiver.url, auth=HttpAuth("bearer", "api-token"))
    with pytest.raises(TransientConnectorError) as info:
        request_json(config, secrets, "POST", {}, "k")
    assert "tok-9f8e7d6c5b4a" not in str(info.value) and "[secret:api-token]" in str(info.value)


def test_path_segments_cannot_escape() -> None:
    assert path_segment("../../admin?x=1#y") == "..%2F..%2Fadmin%3Fx%3D1%23y"
    with pytest.raises(ConnectorError):
        path_segment("..")


# TLS -------------------------------------------------------------------------------------------
def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files (the SMTP test uses it too)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "citysoc-test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_certificates_are_verified(tmp_path: Path, secrets: SecretStore) -> None:
    cert, key = self_signed(tmp_path)
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{port}/hook"
        with pytest.raises(ConnectorError, match="TLS verification failed"):
            request_json(HttpConfig("t", url), secrets, "POST", {}, "k")
        assert hits == []
        assert request_json(HttpConfig("t", url, ca_file=str(cert)), secrets, "POST", {}, "k").status == 200
        assert hits == ["/hook"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
