"""HTTP ingest: an NDJSON bulk endpoint for systems that push (LGSP, the operations centre, departments' platforms).

``POST /v1/ingest`` with ``Authorization: Bearer <token>`` and one record per
line.  The token names the source and its parser (:class:`TokenStore`, a JSON
file holding only SHA-256 hashes of the tokens).  Each line is checked with the
source's parser; the good lines are written to the :class:`collectors.spool.Spool`
(fsync) *before* the response, so a ``200`` means the records survive a crash of
the collector; the bad lines are spooled as dead letters and reported back with
their line numbers::

    {"accepted": 998, "rejected": [{"line": 3, "reason": "BadRecord: ..."}]}

A line's offset is ``<sha256 of the body, 16 hex>:<line>``: a client that
retries the same batch after a timeout gets the same offsets, and so the same
stable event ids; the store keeps one copy.

Errors: 401 unknown token, 404/405 wrong path or method, 411 no length, 413 body
over ``max_body`` bytes, 400 a body that is not UTF-8, 503 with ``Retry-After``
when the spool is full (back-pressure, nothing is dropped).  It is a plain WSGI
callable, so any WSGI server (or a Flask app's dispatcher) can mount it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from collectors.base import BadRecord, CollectorError, NotMyFormat, RawRecord, get_parser
from collectors.metrics import Metrics
from collectors.spool import Rejected, Spool, SpoolFull
from store.errors import EventValidationError

MAX_BODY = 16 * 1024 * 1024
_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class IngestSource:
    """A pushing system: its name, the parser of its records and the hash of its token."""

    name: str
    parser: str
    token_sha256: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Per-source tokens in a JSON file; only hashes are kept, the token is shown once when issued."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._sources = self._load()

    def _load(self) -> dict[str, IngestSource]:
        try:
            doc = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CollectorError(f"ingest tokens {self.path}: unreadable: {exc}") from exc
        sources = {}
        for index, item in enumerate(doc.get("sources", []) if isinstance(doc, dict) else []):
            try:
                source = IngestSource(str(item["name"]), str(item["parser"]), str(item["token_sha256"]))
            except (KeyError, TypeError) as exc:
                raise CollectorError(f"ingest tokens {self.path}: sources[{index}] lacks {exc}") from exc
            sources[source.token_sha256] = source
        return sources

    def issue(self, name: str, parser: str) -> str:
        """Create (or replace) the token of source ``name``; returns the token, which is not stored."""
        if not _SOURCE_NAME.fullmatch(name):
            raise CollectorError(f"ingest source name {name!r}: use letters, digits, '.', '_' or '-' (max 64)")
        get_parser(parser)  # an unknown parser fails here, with the list of known ones
        token = secrets.token_urlsafe(32)
        with self._lock:
            kept = {h: s for h, s in self._sources.items() if s.name != name}
            kept[_hash(token)] = IngestSource(name, parser, _hash(token))
            self._save(kept)
            self._sources = kept
        return token

    def sources(self) -> list[IngestSource]:
        return sorted(self._sources.values(), key=lambda s: s.name)

    def authenticate(self, token: str) -> IngestSource | None:
        digest = _hash(token)
        for known, source in self._sources.items():
            if hmac.compare_digest(known, digest):
                return source
        return None

    def _save(self, sources: dict[str, IngestSource]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"sources": [s.__dict__ for s in sorted(sources.values(), key=lambda s: s.name)]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def _reply(start_response: StartResponse, status: str, body: dict[str, Any],
           headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    data = json.dumps(body).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers])
    return [data]


class HttpIngestApp:
    """The WSGI application; ``spool`` receives accepted lines, ``metrics`` counts per source."""

    path = "/v1/ingest"

    def __init__(self, tokens: TokenStore, spool: Spool, metrics: Metrics | None = None,
                 max_body: int = MAX_BODY) -> None:
        self.tokens = tokens
        self.spool = spool
        self.metrics = metrics or Metrics()
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO") != self.path:
            return _reply(start_response, "404 Not Found", {"error": f"not found; POST records to {self.path}"})
        if environ.get("REQUEST_METHOD") != "POST":
            return _reply(start_response, "405 Method Not Allowed", {"error": "use POST"}, [("Allow", "POST")])
        auth = str(environ.get("HTTP_AUTHORIZATION", ""))
        source = self.tokens.authenticate(auth[7:].strip()) if auth.startswith("Bearer ") else None
        if source is None:
            return _reply(start_response, "401 Unauthorized", {"error": "missing or unknown bearer token"},
                          [("WWW-Authenticate", "Bearer")])
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return _reply(start_response, "411 Length Required", {"error": "send a Content-Length"})
        if length > self.max_body or length < 0:
            return _reply(start_response, "413 Content Too Large",
                          {"error": f"body of {length} bytes is over the {self.max_body}-byte limit; split the batch"})
        body = environ["wsgi.input"].read(length)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _reply(start_response, "400 Bad Request", {"error": f"body is not UTF-8 (byte {exc.start})"})
        result = self.accept(source, text, hashlib.sha256(body).hexdigest()[:16], environ.get("REMOTE_ADDR"))
        if result is None:
            return _reply(start_response, "503 Service Unavailable",
                          {"error": "the collector is catching up; retry this batch later"}, [("Retry-After", "5")])
        return _reply(start_response, "200 OK", result)

    def accept(self, source: IngestSource, text: str, batch: str, peer: str | None) -> dict[str, Any] | None:
        """Check and spool the lines of one body; ``None`` when the spool is full (nothing was accepted)."""
        parser = get_parser(source.parser)
        origin = f"http:{source.name}"
        now = datetime.now(UTC)
        items: list[RawRecord | Rejected] = []
        rejected: list[dict[str, Any]] = []
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            record = RawRecord(line, origin, f"{batch}:{number}", received=now, peer=peer)
            try:
                parser.parse(record)
            except (NotMyFormat, BadRecord, EventValidationError) as exc:
                reason = f"line {number}: {type(exc).__name__}: {exc}"
                rejected.append({"line": number, "reason": reason})
                items.append(Rejected(origin, record.offset, f"[{source.parser}] {reason}", line))
                continue
            items.append(record)
        accepted = len(items) - len(rejected)
        self.metrics.inc(origin, "received", len(items))
        try:
            self.spool.append(items, source.parser)
        except SpoolFull:
            return None
        self.metrics.inc(origin, "spooled", accepted)
        self.metrics.inc(origin, "rejected", len(rejected))
        return {"accepted": accepted, "rejected": rejected}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per batch would flood the log; the metrics count the batches


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        threading.Thread(target=self._serve_one, args=(request, client_address), daemon=True).start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


class HttpIngestServer:
    """Serves an :class:`HttpIngestApp` on ``host:port`` (0 = a free port, see :attr:`address`) in a thread."""

    def __init__(self, app: HttpIngestApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-ingest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
