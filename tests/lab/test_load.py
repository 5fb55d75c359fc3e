"""The load generator against real collectors: syslog UDP/TCP, Mosquitto + MQTT subscriber, HTTP ingest."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collectors.base import get_parser
from collectors.pipeline import IngestPipeline
from collectors.spool import Spool
from collectors.transports.http_ingest import HttpIngestApp, HttpIngestServer, TokenStore
from collectors.transports.mqtt import MqttSubscriber
from collectors.transports.syslog import SyslogServer
from lab.broker import BrokerError, mosquitto
from lab.load import Burst, LoadError, Targets, run_load
from store.sqlite import SQLiteStore


def test_burst_schedule_and_bad_settings() -> None:
    burst = Burst.parse("4x2s/10s")
    assert [burst.factor_at(t) for t in (0.5, 1.9, 2.1, 9.9, 10.1)] == [4, 4, 1, 1, 4]
    with pytest.raises(LoadError, match="expected FACTOR"):
        Burst.parse("lots")
    with pytest.raises(LoadError, match="no target"):
        run_load(Targets(), 10, 1)
    with pytest.raises(LoadError, match="must start with http"):
        Targets(http_url="file:///etc/passwd")


def test_mixed_load_reaches_every_collector_at_the_planned_rate(tmp_path: Path) -> None:
    try:
        broker = mosquitto()
        port = broker.__enter__()
    except BrokerError as exc:
        pytest.skip(str(exc))
    store = SQLiteStore(tmp_path / "load.db")
    pipeline = IngestPipeline(store)
    syslog = SyslogServer(pipeline, get_parser("syslog"), host="127.0.0.1")
    mqtt_spool, http_spool = Spool(tmp_path / "mqtt"), Spool(tmp_path / "http")
    subscriber = MqttSubscriber(mqtt_spool, "127.0.0.1", port, client_id="lab-load-test")
    tokens = TokenStore(tmp_path / "tokens.json")
    web_token, win_token = tokens.issue("ioc-gateway", "web.access"), tokens.issue("hospital", "windows.evtx")
    http = HttpIngestServer(HttpIngestApp(tokens, http_spool))
    syslog.start()
    subscriber.start()
    http.start()
    stopped = False
    try:
        assert syslog.udp_address and syslog.tcp_address
        targets = Targets(syslog.udp_address, syslog.tcp_address, ("127.0.0.1", port),
                          f"http://127.0.0.1:{http.address[1]}/v1/ingest",
                          {"web.access": web_token, "windows.evtx": win_token})
        result = run_load(targets, eps=200, seconds=3, burst=Burst.parse("3x0.5s/1.5s"), seed=5)
        # 3 s at 200/s plus two half-second bursts at 600/s: 600 + 2 * 0.5 * 400 = 1000 records planned
        assert result.errors == 0
        assert 900 <= result.total <= 1050, result.as_dict()
        assert {"syslog-udp", "syslog-tcp", "mqtt", "http:web.access", "http:windows.evtx"} <= set(result.sent)
        time.sleep(1.0)  # the last QoS 0 messages on their way through the broker
        http.stop()
        subscriber.stop()
        syslog.stop()  # flushes what it received
        stopped = True
        mqtt_spool.drain(pipeline)
        http_spool.drain(pipeline)
        datasets = {e.get("event.dataset") for e in store.search_events(limit=5000)}
        assert {"iot.mqtt", "web.access", "linux.auth"} <= datasets
        assert any(str(d).startswith("windows") for d in datasets)
        # nothing is lost on the way: syslog over loopback UDP and TCP, the HTTP batches and QoS 0 on loopback
        assert store.count_events() == result.total
    finally:
        if not stopped:
            http.stop()
            subscriber.stop()
            syslog.stop()
        broker.__exit__(None, None, None)
        mqtt_spool.close()
        http_spool.close()
        store.close()
