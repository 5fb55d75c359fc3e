"""Syslog over TLS (RFC 5425) with a self-signed certificate made by openssl in the test."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from collectors.base import CollectorError
from collectors.parsers.syslog import SyslogParser
from collectors.pipeline import IngestPipeline
from collectors.transports.syslog import SyslogServer, server_tls_context
from store.sqlite import SQLiteStore
from tests.collectors.samples import wait_until

MESSAGES = [
    "<38>1 2026-11-20T08:00:00Z ioc-web-01 sshd 4242 - [origin ip=\"10.0.0.5\"] Failed password for invalid "
    "user admin from 203.0.113.9 port 52144 ssh2",
    "<86>Nov 20 08:00:01 data-db-01 CRON[5001]: pam_unix(cron:session): session opened for user root",
]


def _wait_closed_by_server(sock: socket.socket) -> None:
    """Return once the server ended the connection (close or reset); its timeout fails the test otherwise."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    base = tmp_path_factory.mktemp("tls")
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_frames_are_stored_and_a_plain_client_does_not_stop_the_server(
    certificate: tuple[str, str], store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    cert, key = certificate
    server = SyslogServer(pipeline, SyslogParser(), udp_port=None, flush_interval=0.05,
                          tls=server_tls_context(cert, key))
    with server:
        assert server.tcp_address is not None
        with socket.create_connection(server.tcp_address) as plain:  # not TLS: only this connection fails
            plain.sendall(MESSAGES[1].encode() + b"\n")
            plain.settimeout(5)
            _wait_closed_by_server(plain)
        client_context = ssl.create_default_context(cafile=cert)
        with socket.create_connection(server.tcp_address) as raw, \
                client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            framed = MESSAGES[0].encode()
            tls.sendall(str(len(framed)).encode() + b" " + framed)  # octet counting, as RFC 5425 requires
            tls.sendall(MESSAGES[1].encode() + b"\n")  # newline framing, as many senders do anyway
            tls.sendall(b"".join(f"<13>1 2026-11-20T08:00:{i:02d}Z h app - - - burst {i}\n".encode()
                                 for i in range(10, 40)))
        wait_until(lambda: store.count_events() == 32, what="32 events over TLS")
    events = store.search_events(limit=100)
    assert {e.get("labels.source") for e in events} == {f"syslog:tls:127.0.0.1:{server.tcp_address[1]}"}
    first = next(e for e in events if e.get("log.syslog.appname") == "sshd")
    assert first.get("event.original") == MESSAGES[0]
    assert first.get("source.ip") == "203.0.113.9"
    assert first.get("log.syslog.structured_data.origin.ip") == "10.0.0.5"  # structured data kept over TLS
    assert store.count_dead_letters() == 0  # the plain client's bytes never became records


def test_bad_certificate_files_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="cannot load certificate"):
        server_tls_context(str(tmp_path / "missing.pem"), str(tmp_path / "missing.key"))
