from __future__ import annotations

import socket
import sqlite3
import struct
import time
from collections.abc import Sequence

import pytest

from collectors.base import CollectorError
from collectors.parsers.syslog import SyslogParser
from collectors.pipeline import IngestPipeline
from collectors.transports.syslog import Frame, StreamFramer, SyslogServer
from store.event import Event
from store.sqlite import SQLiteStore
from tests.collectors.samples import wait_until

GOOD = [
    "<38>1 2026-11-20T08:00:00Z ioc-web-01 sshd 4242 - - Failed password for invalid user admin "
    "from 203.0.113.9 port 52144 ssh2",
    "<86>Nov 20 08:00:01 data-db-01 CRON[5001]: pam_unix(cron:session): session opened for user root",
]
XSS = "<14>1 2026-11-20T08:00:02Z web-01 app - - - user-agent <script>alert(1)</script> ran $(rm -rf /)"


def octet(message: str) -> bytes:
    data = message.encode()
    return str(len(data)).encode() + b" " + data


def stored(store: SQLiteStore) -> list[Event]:
    """Every stored event, in the order the server numbered the messages."""
    events = store.search_events(limit=1000)
    return sorted(events, key=lambda e: int(str(e.get("labels.source_offset")).rsplit(":", 1)[1]))


def server_for(pipeline: IngestPipeline, **kwargs: object) -> SyslogServer:
    return SyslogServer(pipeline, SyslogParser(), host="127.0.0.1", **kwargs)  # type: ignore[arg-type]


# UDP -------------------------------------------------------------------------------------
def test_udp_datagrams_are_stored_and_a_malformed_one_is_dead_lettered(
    store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    with server_for(pipeline, tcp_port=None, flush_interval=0.05) as server:
        assert server.udp_address is not None and server.udp_address[1] > 0 and server.tcp_address is None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            peer = f"127.0.0.1:{client.getsockname()[1]}"
            for message in (GOOD[0], GOOD[1], "not syslog at all", XSS + "\n"):
                client.sendto(message.encode(), server.udp_address)
        wait_until(lambda: store.count_events() == 3 and store.count_dead_letters() == 1, what="3 events, 1 dead")
    source = f"syslog:udp:127.0.0.1:{server.udp_address[1]}"
    events = stored(store)
    assert [(e.get("labels.source"), e.get("labels.source_offset")) for e in events] == [
        (source, f"udp:{peer}:1"), (source, f"udp:{peer}:2"), (source, f"udp:{peer}:4")
    ]
    assert [e.get("event.original") for e in events] == [GOOD[0], GOOD[1], XSS]
    assert events[0].get("event.action") == "ssh_login" and events[0].get("source.ip") == "203.0.113.9"
    assert {e.get("observer.type") for e in events} == {"syslog"}
    [dead] = store.list_dead_letters()
    assert (dead.source, dead.offset, dead.raw) == (source, f"udp:{peer}:3", "not syslog at all")
    assert dead.reason.startswith("[syslog] BadRecord: no syslog PRI")


def test_attacker_text_is_stored_verbatim_as_data(store: SQLiteStore, pipeline: IngestPipeline) -> None:
    with server_for(pipeline, udp_port=None, flush_interval=0.05) as server:
        assert server.tcp_address is not None
        with socket.create_connection(server.tcp_address) as client:
            client.sendall(XSS.encode() + b"\n")
        wait_until(lambda: store.count_events() == 1, what="the event")
    [event] = stored(store)
    again = store.get_event(event.id)
    assert again.get("message") == "user-agent <script>alert(1)</script> ran $(rm -rf /)"
    assert again.get("event.original") == XSS
    assert [e.id for e in store.search_events(text="alert")] == [event.id]


# TCP framing ---------------------------------------------------------------------------------
def test_tcp_octet_counting_and_newline_framing_on_one_connection(
    store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    multi_line = "<14>1 2026-11-20T08:00:03Z h app - - - first line\nsecond line"
    stream = octet(GOOD[0]) + GOOD[1].encode() + b"\r\n" + octet(multi_line) + b"\n" + XSS.encode() + b"\n"
    with server_for(pipeline, udp_port=None, flush_interval=0.05) as server:
        assert server.tcp_address is not None
        with socket.create_connection(server.tcp_address) as client:
            peer = f"127.0.0.1:{client.getsockname()[1]}"
            for i in range(0, len(stream), 7):  # frames arrive cut at arbitrary points
                client.sendall(stream[i : i + 7])
                time.sleep(0.001)
        wait_until(lambda: store.count_events() == 4, what="4 events")
    events = stored(store)
    assert [e.get("event.original") for e in events] == [GOOD[0], GOOD[1], multi_line, XSS]
    assert [e.get("labels.source_offset") for e in events] == [f"tcp:{peer}:{n}" for n in (1, 2, 3, 4)]
    assert events[2].get("message") == "first line\nsecond line"
    assert store.count_dead_letters() == 0


def test_a_client_vanishing_mid_frame_does_not_stop_the_server(store: SQLiteStore, pipeline: IngestPipeline) -> None:
    with server_for(pipeline, udp_port=None, flush_interval=0.05) as server:
        assert server.tcp_address is not None
        part = b"<34>1 2026-11-20T08:00:00Z h app - - - only part"
        with socket.create_connection(server.tcp_address) as cut:
            cut_peer = f"127.0.0.1:{cut.getsockname()[1]}"
            cut.sendall(b"120 " + part)
        reset = socket.create_connection(server.tcp_address)
        reset.sendall(b"80 <34>1 2026-11-20")
        time.sleep(0.2)  # let the server read the bytes: data still unread when the RST lands is discarded by TCP
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        reset.close()
        wait_until(lambda: store.count_dead_letters() == 2, what="2 dead letters")
        with socket.create_connection(server.tcp_address) as client:
            client.sendall(octet(GOOD[1]))
        wait_until(lambda: store.count_events() == 1, what="the event after the broken clients")
    [event] = stored(store)
    assert event.get("event.original") == GOOD[1]
    dead = {d.offset: d for d in store.list_dead_letters()}
    cut_letter = dead[f"tcp:{cut_peer}:1"]
    assert cut_letter.reason == "[syslog tcp] stream ended in the middle of a frame (48 of 120 bytes received)"
    assert cut_letter.raw == part.decode()
    [reset_letter] = [d for key, d in dead.items() if key != f"tcp:{cut_peer}:1"]
    assert reset_letter.reason == "[syslog tcp] stream ended in the middle of a frame (16 of 80 bytes received)"


def test_oversized_messages_are_dead_lettered_and_the_stream_goes_on(
    store: SQLiteStore, pipeline: IngestPipeline
) -> None:
    with server_for(pipeline, udp_port=None, flush_interval=0.05, max_message=200) as server:
        assert server.tcp_address is not None
        with socket.create_connection(server.tcp_address) as client:
            client.sendall(b"500 " + b"x" * 500 + octet(GOOD[0]) + b"<14>" + b"y" * 300 + b"\n" + GOOD[1].encode())
        wait_until(lambda: store.count_events() == 2 and store.count_dead_letters() == 2, what="2 events, 2 dead")
    assert [e.get("event.original") for e in stored(store)] == GOOD
    reasons = sorted(d.reason for d in store.list_dead_letters())
    assert reasons == [
        "[syslog tcp] newline-framed message longer than 200 bytes (first bytes kept)",
        "[syslog tcp] octet-counted frame of 500 bytes is over the 200-byte limit (first bytes kept)",
    ]


# batching, stop, failures ------------------------------------------------------------------------
def test_batches_flush_by_size_and_stop_flushes_the_rest(store: SQLiteStore, pipeline: IngestPipeline) -> None:
    server = server_for(pipeline, tcp_port=None, batch_size=2, flush_interval=60)
    server.start()
    assert server.udp_address is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for message in GOOD:
            client.sendto(message.encode(), server.udp_address)
        wait_until(lambda: store.count_events() == 2, what="a full batch stored without waiting for the interval")
        client.sendto(XSS.encode(), server.udp_address)
        time.sleep(0.3)
        assert store.count_events() == 2  # a partial batch waits for the interval...
        for _ in range(20):
            client.sendto(XSS.encode(), server.udp_address)
    server.stop()  # ...or for stop(), which also reads what is still in the socket buffer
    assert store.count_events() == 23
    assert pipeline.stats.received == 23 and pipeline.stats.stored == 23
    server.stop()  # idempotent


def test_a_batch_the_store_refuses_is_retried_not_dropped(
    store: SQLiteStore, pipeline: IngestPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.put_events
    calls: list[int] = []

    def flaky(events: Sequence[Event]) -> list[Event]:
        calls.append(len(events))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(events)

    monkeypatch.setattr(store, "put_events", flaky)
    with server_for(pipeline, tcp_port=None, flush_interval=0.05) as server:
        assert server.udp_address is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(GOOD[0].encode(), server.udp_address)
        wait_until(lambda: store.count_events() == 1, what="the event after the retry")
    assert calls == [1, 1]


def test_stop_reports_records_the_store_never_took(
    store: SQLiteStore, pipeline: IngestPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(events: Sequence[Event]) -> list[Event]:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "put_events", broken)
    server = server_for(pipeline, tcp_port=None, flush_interval=60)
    server.start()
    assert server.udp_address is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(GOOD[0].encode(), server.udp_address)
    with pytest.raises(CollectorError, match="1 records could not be stored: disk I/O error") as info:
        server.stop()
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)


def test_start_twice_and_a_port_in_use(pipeline: IngestPipeline) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        server = server_for(pipeline, udp_port=taken.getsockname()[1], tcp_port=None)
        with pytest.raises(CollectorError, match=r"cannot listen on 127\.0\.0\.1"):
            server.start()
    with server_for(pipeline) as server, pytest.raises(CollectorError, match="already called"):
        server.start()


# the framer on its own ------------------------------------------------------------------------------
def feed_bytewise(framer: StreamFramer, data: bytes) -> list[Frame]:
    frames: list[Frame] = []
    for i in range(len(data)):
        frames.extend(framer.feed(data[i : i + 1]))
    return frames


def test_framer_gives_the_same_frames_whatever_the_cut() -> None:
    stream = octet("<1>a b") + b"<2>newline\r\n\n\n" + octet("<3>x\ny") + b"<4>last\n"
    whole = StreamFramer().feed(stream)
    assert whole == [Frame(b"<1>a b"), Frame(b"<2>newline"), Frame(b"<3>x\ny"), Frame(b"<4>last")]
    assert feed_bytewise(StreamFramer(), stream) == whole


def test_framer_at_the_end_of_a_stream() -> None:
    framer = StreamFramer()
    assert framer.feed(b"<5>no newline") == []
    assert framer.close() == [Frame(b"<5>no newline")]
    framer.feed(b"12 <6>abc")
    assert framer.close() == [Frame(b"<6>abc", "stream ended in the middle of a frame (6 of 12 bytes received)")]
    framer.feed(b"12")
    assert framer.close() == [Frame(b"12")]  # a number and nothing else is a (bad) message, not a frame


def test_framer_skips_the_rest_of_an_oversized_message_across_reads() -> None:
    framer = StreamFramer(max_message=10)
    frames = framer.feed(b"30 0123456789") + framer.feed(b"0123456789") + framer.feed(b"0123456789<7>ok\n")
    assert frames == [
        Frame(b"0123456789", "octet-counted frame of 30 bytes is over the 10-byte limit (first bytes kept)"),
        Frame(b"<7>ok"),
    ]
    frames = framer.feed(b"<8>" + b"z" * 20) + framer.feed(b"zzz\n<9>fine\n")
    assert frames == [
        Frame(b"<8>" + b"z" * 20, "newline-framed message longer than 10 bytes (first bytes kept)"),
        Frame(b"<9>fine"),
    ]
