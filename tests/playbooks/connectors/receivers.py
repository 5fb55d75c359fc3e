"""Real receiving servers for connector and action tests, started on 127.0.0.1 and stopped by the test.

An HTTP server that records every request, an SMTP sink (aiosmtpd), and a
Mosquitto broker with a recording subscriber.  Tests assert on what these
received, byte for byte, not on what the client meant to send.
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.services import free_port, wait_port


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    #: path -> (status, JSON body); default 201 {"id": "T-1"}
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    #: called per request to choose the answer instead (e.g. echo a header back)
    responder: Callable[[Received], tuple[int, Any]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(free_port())

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            got = Received(self.command, self.path, list(self.headers.items()), self.rfile.read(length))
            receiver.requests.append(got)
            if receiver.responder is not None:
                status, doc = receiver.responder(got)
            else:
                status, doc = receiver.answers.get(self.path, (201, {"id": "T-1"}))
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if 300 <= status < 400 and isinstance(doc, dict) and "location" in doc:
                self.send_header("Location", doc["location"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PATCH = do_PUT = do_GET = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class SmtpSink:
    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def smtp_sink(users: dict[str, str] | None = None) -> Iterator[SmtpSink]:
    """An aiosmtpd server; with ``users`` it offers AUTH over plain text (loopback only) and checks passwords."""
    sink = SmtpSink(free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            sink.logins.append((user, password))
            if users and users.get(user) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    kwargs: dict[str, Any] = {}
    if users:
        kwargs = {"authenticator": authenticator, "auth_require_tls": False}
    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port, **kwargs)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextmanager
def mosquitto(tmp: Path, passwords: dict[str, str] | None = None) -> Iterator[int]:
    """A throw-away Mosquitto broker; yields its port."""
    binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / f"mosquitto-{port}.conf"
    lines = [f"listener {port} 127.0.0.1", "persistence false"]
    if passwords:
        tool = shutil.which("mosquitto_passwd") or shutil.which("/usr/bin/mosquitto_passwd")
        if tool is None:
            pytest.skip("mosquitto_passwd is not installed (apt-get install mosquitto)")
        pwfile = tmp / f"passwd-{port}"
        for user, password in passwords.items():
            flags = ["-b"] if pwfile.exists() else ["-c", "-b"]
            subprocess.run([tool, *flags, str(pwfile), user, password], check=True, capture_output=True)
        pwfile.chmod(0o600)
        # mosquitto started as root drops to user "mosquitto", which cannot read a private file of this test
        lines += ["allow_anonymous false", f"password_file {pwfile}", f"user {getpass.getuser()}"]
    else:
        lines.append("allow_anonymous true")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class MqttRecorder:
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.messages)


@contextmanager
def mqtt_recorder(port: int, username: str = "", password: str = "") -> Iterator[MqttRecorder]:
    """A subscriber to every topic on the broker, recording (topic, payload)."""
    recorder = MqttRecorder()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"recorder-{port}")
    if username:
        client.username_pw_set(username, password)
    client.on_message = lambda _c, _u, msg: recorder.messages.append((msg.topic, msg.payload))
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_connect = lambda c, *_args: c.subscribe("#", qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise TimeoutError("the recorder did not subscribe")
        yield recorder
    finally:
        client.disconnect()
        client.loop_stop()
