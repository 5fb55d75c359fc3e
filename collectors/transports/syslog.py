"""Syslog receiver: UDP datagrams and TCP streams, batched into the ingest pipeline.

Two threads.  The I/O thread runs one selector over the UDP socket, the TCP
listener, every client connection and a wake-up socket pair; it only cuts bytes
into records (one datagram = one record; TCP frames by RFC 6587 octet counting
or by newline, decided per message) and queues them.  The flusher thread takes
records off the queue and hands them to :meth:`IngestPipeline.ingest` in
batches of ``batch_size`` or every ``flush_interval`` seconds, so parsing and
storing happen on one thread, away from the sockets.

With ``tls`` (an :class:`ssl.SSLContext`, RFC 5425) the TCP listener speaks
TLS: each accepted connection does its handshake without blocking the I/O
thread, a failed handshake closes only that connection, and the records'
source is ``syslog:tls:<listen address>``.  :func:`server_tls_context` builds
the context from a certificate and key file.

Nothing is dropped on purpose: the queue is unbounded; a frame that cannot be
a record (over ``max_message`` bytes, or cut off by the client closing the
connection) goes to the dead letters with the reason; a batch the store
refuses is retried until it is stored; :meth:`SyslogServer.stop` first reads
what the kernel already holds for the sockets, then stores everything queued.
(UDP itself may lose datagrams before they reach the socket; a larger receive
buffer is requested to make that less likely under bursts.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from collectors.base import CollectorError, Parser, RawRecord
from collectors.pipeline import IngestPipeline

log = logging.getLogger(__name__)

#: largest message accepted; RFC 5424 asks receivers for at least 2048 bytes and UDP cannot carry more than 65507
MAX_MESSAGE = 65536
#: bytes of an unusable frame kept in its dead letter
DEAD_LETTER_PREVIEW = 1024
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
#: attempts to store the last batches once stop() was called, before giving up and raising
FINAL_ATTEMPTS = 3

_OCTET_COUNT = re.compile(rb"([1-9][0-9]{0,8}) ")
_OCTET_PREFIX = re.compile(rb"[1-9][0-9]{0,8}")
_STOP = object()


@dataclass(frozen=True)
class Frame:
    """One message cut from a stream, or the piece of one that could not be used (``problem`` says why)."""

    data: bytes
    problem: str | None = None


class StreamFramer:
    """Cuts a TCP byte stream into syslog messages.

    Each message is framed on its own: ``LEN SP MSG`` (RFC 6587 octet
    counting) when it starts with a non-zero digit run and a space, otherwise
    up to the next LF (non-transparent framing; a CR before the LF is dropped,
    empty lines are keep-alives).  A message longer than ``max_message`` is
    returned as a problem frame and the rest of it is skipped.
    """

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buffer = bytearray()
        self._skip_bytes = 0  # rest of an oversized octet-counted frame
        self._skip_line = False  # rest of an oversized newline-framed message

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        buffer = self._buffer
        while buffer:
            if self._skip_bytes:
                taken = min(self._skip_bytes, len(buffer))
                del buffer[:taken]
                self._skip_bytes -= taken
                continue
            if self._skip_line:
                newline = buffer.find(b"\n")
                if newline < 0:
                    buffer.clear()
                    break
                del buffer[: newline + 1]
                self._skip_line = False
                continue
            count = _OCTET_COUNT.match(buffer)
            if count is not None:
                length, start = int(count[1]), count.end()
                if length > self.max_message:
                    preview = bytes(buffer[start : start + DEAD_LETTER_PREVIEW])
                    frames.append(Frame(preview, f"octet-counted frame of {length} bytes is over the "
                                                 f"{self.max_message}-byte limit (first bytes kept)"))
                    del buffer[:start]
                    self._skip_bytes = length
                    continue
                if len(buffer) - start < length:
                    break  # the rest of the frame has not arrived yet
                frames.append(Frame(bytes(buffer[start : start + length])))
                del buffer[: start + length]
                continue
            if _OCTET_PREFIX.fullmatch(buffer):
                break  # may be the start of an octet count whose space is still in flight
            newline = buffer.find(b"\n")
            if newline < 0 and len(buffer) <= self.max_message:
                break  # the rest of the line has not arrived yet
            if newline < 0 or newline > self.max_message:
                frames.append(Frame(bytes(buffer[:DEAD_LETTER_PREVIEW]), f"newline-framed message longer "
                                    f"than {self.max_message} bytes (first bytes kept)"))
                if newline < 0:
                    buffer.clear()
                    self._skip_line = True
                else:
                    del buffer[: newline + 1]
                continue
            line = bytes(buffer[:newline]).rstrip(b"\r")
            del buffer[: newline + 1]
            if line.strip(b" \t\x00"):
                frames.append(Frame(line))
        return frames

    def close(self) -> list[Frame]:
        """The end of the stream: a last unterminated line is a message, a cut octet frame a problem."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        skipping, self._skip_bytes, self._skip_line = bool(self._skip_bytes or self._skip_line), 0, False
        if skipping or not rest.strip(b" \t\r\n\x00"):
            return []
        count = _OCTET_COUNT.match(rest)
        if count is not None:
            got = len(rest) - count.end()
            return [Frame(rest[count.end() :], f"stream ended in the middle of a frame ({got} of {count[1].decode()} "
                                               "bytes received)")]
        return [Frame(rest.rstrip(b"\r\n"))]


@dataclass(frozen=True)
class _Rejected:
    """A frame that becomes a dead letter instead of a record."""

    source: str
    offset: str
    reason: str
    raw: str


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    peer: str
    framer: StreamFramer = field(default_factory=StreamFramer)
    handshaking: bool = False  # a TLS connection whose handshake is not done yet


def _peer(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_tls_context(certfile: str, keyfile: str | None = None, cafile: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``cafile`` clients must present a certificate it signed (mutual TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Syslog senders only write.  TLS 1.3 session tickets sent after the handshake would sit unread in the
    # sender's socket, and closing a socket with unread data sends a reset that discards the last messages
    # still in our receive buffer.
    context.num_tickets = 0
    try:
        context.load_cert_chain(certfile, keyfile)
        if cafile is not None:
            context.load_verify_locations(cafile)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise CollectorError(f"syslog TLS: cannot load certificate {certfile} / key {keyfile}: {exc}") from exc
    return context


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\r\n\x00")


class SyslogServer:
    """Receives syslog on UDP and TCP and stores it through ``pipeline`` with ``parser``.

    ``udp_port``/``tcp_port`` 0 binds a free port (see :attr:`udp_address` and
    :attr:`tcp_address` after :meth:`start`); ``None`` leaves that protocol off.
    Records are named ``source = syslog:<proto>:<listen address>`` and
    ``offset = <proto>:<peer>:<n>``, ``n`` counting messages since start.
    """

    def __init__(
        self,
        pipeline: IngestPipeline,
        parser: Parser,
        host: str = "127.0.0.1",
        udp_port: int | None = 0,
        tcp_port: int | None = 0,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_message: int = MAX_MESSAGE,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if batch_size < 1 or flush_interval <= 0 or max_message < 1:
            raise CollectorError("syslog server: batch_size, flush_interval and max_message must be positive")
        self.pipeline = pipeline
        self.parser = parser
        self.host = host
        self.udp_port = udp_port
        self.tcp_port = tcp_port
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_message = max_message
        self.tls = tls
        self.udp_address: tuple[str, int] | None = None
        self.tcp_address: tuple[str, int] | None = None
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._sources: dict[str, str] = {}
        self._connections: set[_Connection] = set()
        self._sequence = 0  # touched by the I/O thread only
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._state = threading.Lock()
        self._started = False
        self._stopped = False
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._unstored = 0
        self._last_error: BaseException | None = None

    # lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Bind the sockets and start the I/O and flusher threads."""
        with self._state:
            if self._started:
                raise CollectorError("syslog server: start() was already called")
            self._started = True
            try:
                if self.udp_port is not None:
                    self._udp = self._bind(socket.SOCK_DGRAM, self.udp_port)
                    self.udp_address = self._udp.getsockname()[:2]
                    self._sources["udp"] = f"syslog:udp:{_peer(self.udp_address)}"
                if self.tcp_port is not None:
                    self._tcp = self._bind(socket.SOCK_STREAM, self.tcp_port)
                    self.tcp_address = self._tcp.getsockname()[:2]
                    self._sources["tcp"] = f"syslog:{'tls' if self.tls else 'tcp'}:{_peer(self.tcp_address)}"
                self._wake_r, self._wake_w = socket.socketpair()
            except OSError as exc:
                self._close_sockets()
                self._stopped = True
                raise CollectorError(
                    f"syslog server cannot listen on {self.host} (udp {self.udp_port}, tcp {self.tcp_port}): {exc}"
                ) from exc
            self._threads = [
                threading.Thread(target=self._io_loop, name="syslog-io", daemon=True),
                threading.Thread(target=self._flush_loop, name="syslog-flush", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
        log.info("syslog server listening on udp %s tcp %s", self.udp_address, self.tcp_address)

    def stop(self) -> None:
        """Stop receiving, store everything received, close the sockets and join the threads.

        Raises :class:`CollectorError` when the store kept refusing the last
        batches (the records are then not stored; the cause is chained).
        """
        with self._state:
            if not self._started or self._stopped:
                return
            self._stopped = True
        self._stopping.set()
        assert self._wake_w is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        self._threads[0].join()
        self._queue.put(_STOP)  # after the I/O thread is done, so it is the last item
        self._threads[1].join()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._unstored:
            raise CollectorError(
                f"syslog server: {self._unstored} records could not be stored: {self._last_error}"
            ) from self._last_error

    def __enter__(self) -> SyslogServer:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _bind(self, kind: socket.SocketKind, port: int) -> socket.socket:
        family, _, _, _, address = socket.getaddrinfo(self.host, port, type=kind)[0]
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            else:
                with contextlib.suppress(OSError):  # a smaller buffer still works, it only drops bursts sooner
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            sock.bind(address)
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _close_sockets(self) -> None:
        for conn in list(self._connections):
            conn.sock.close()
        self._connections.clear()
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()

    # I/O thread ---------------------------------------------------------------------
    def _io_loop(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            assert self._wake_r is not None
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            if self._udp is not None:
                selector.register(self._udp, selectors.EVENT_READ, "udp")
            if self._tcp is not None:
                selector.register(self._tcp, selectors.EVENT_READ, "accept")
            running = True
            while running:
                for key, _ in selector.select():
                    if key.data == "wake":
                        running = False
                    elif key.data == "udp":
                        self._read_udp()
                    elif key.data == "accept":
                        self._accept(selector)
                    else:
                        self._read_tcp(selector, key.data, final=False)
            # Stopping: what already reached the sockets is taken in before they close.
            self._read_udp()
            self._accept(selector)
            for conn in list(self._connections):
                self._read_tcp(selector, conn, final=True)
        except Exception:
            log.exception("syslog server: the I/O thread failed; no more messages are received")
            raise
        finally:
            selector.close()
            self._close_sockets()

    def _emit(self, proto: str, peer: str, data: bytes, problem: str | None = None) -> None:
        self._sequence += 1
        source, offset = self._sources[proto], f"{proto}:{peer}:{self._sequence}"
        if problem is not None:
            self._queue.put(_Rejected(source, offset, f"[syslog {proto}] {problem}", _text(data)))
        else:
            self._queue.put(RawRecord(_text(data), source, offset, received=datetime.now(UTC), peer=peer))

    def _read_udp(self) -> None:
        if self._udp is None:
            return
        while True:
            try:
                data, address = self._udp.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError as exc:  # e.g. an ICMP error reported on the socket; the next datagram is fine
                log.warning("syslog server: UDP receive error: %s", exc)
                return
            if data.strip(b" \t\r\n\x00"):
                self._emit("udp", _peer(address), data)

    def _accept(self, selector: selectors.BaseSelector) -> None:
        if self._tcp is None:
            return
        while True:
            try:
                sock, address = self._tcp.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of file descriptors and the like: the client may retry
                log.warning("syslog server: cannot accept a TCP connection: %s", exc)
                return
            sock.setblocking(False)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = _Connection(sock, _peer(address), StreamFramer(self.max_message), handshaking=self.tls is not None)
            self._connections.add(conn)
            selector.register(sock, selectors.EVENT_READ, conn)

    def _read_tcp(self, selector: selectors.BaseSelector, conn: _Connection, final: bool) -> None:
        if conn.handshaking:
            try:
                conn.sock.do_handshake()  # type: ignore[attr-defined]
                conn.handshaking = False
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                if not final:
                    return  # the rest of the handshake has not arrived yet
            except (ssl.SSLError, OSError) as exc:  # a client that cannot speak TLS: only its connection ends
                log.warning("syslog server: TLS handshake with %s failed: %s", conn.peer, exc)
            if conn.handshaking:
                selector.unregister(conn.sock)
                conn.sock.close()
                self._connections.discard(conn)
                return
        while True:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                if not final:
                    return
                break
            except OSError as exc:  # reset by the peer: what it sent before still counts
                log.info("syslog server: connection from %s failed: %s", conn.peer, exc)
                data = b""
            if not data:
                break
            for frame in conn.framer.feed(data):
                self._emit("tcp", conn.peer, frame.data, frame.problem)
            if not final and not (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
                # one read per wake-up keeps a busy client from starving the others; decrypted bytes TLS
                # already holds would not wake the selector again, so those are read now
                return
        for frame in conn.framer.close():
            self._emit("tcp", conn.peer, frame.data, frame.problem)
        selector.unregister(conn.sock)
        conn.sock.close()
        self._connections.discard(conn)

    # flusher thread -----------------------------------------------------------------
    def _flush_loop(self) -> None:
        pending: list[RawRecord] = []
        deadline = 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if pending else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._store(pending)
                return
            if isinstance(item, _Rejected):
                dead_letter = self.pipeline.dead_letter
                self._retry(1, functools.partial(dead_letter, item.source, item.offset, item.reason, item.raw))
            elif isinstance(item, RawRecord):
                if not pending:
                    deadline = time.monotonic() + self.flush_interval
                pending.append(item)
            if pending and (len(pending) >= self.batch_size or time.monotonic() >= deadline):
                self._store(pending)
                pending = []

    def _store(self, records: list[RawRecord]) -> None:
        if records:
            ingest = functools.partial(self.pipeline.ingest, list(records), self.parser, batch_size=self.batch_size)
            self._retry(len(records), ingest)

    def _retry(self, count: int, action: Callable[[], object]) -> None:
        """Run ``action`` until it succeeds; once stopping, give up after FINAL_ATTEMPTS and count the loss."""
        delay, attempts = 0.2, 0
        while True:
            attempts += 1
            try:
                action()
                return
            except Exception as exc:  # the store (or a parser) is broken: keep the records and try again
                self._last_error = exc
                if self._stopping.is_set() and attempts >= FINAL_ATTEMPTS:
                    log.error("syslog server: giving up on %d records after %d attempts", count, attempts)
                    self._unstored += count
                    return
                log.error("syslog server: storing %d records failed, retrying in %.1f s", count, delay,
                          exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
