"""``citysoc collect``: run the push and poll collectors (HTTP ingest, MQTT, CoAP, Modbus) and read their state.

Thin shells over :mod:`collectors`: each collector command builds the runtime,
adds the personal-data filter (``CITYSOC_HOME/privacy.json``, if present) and
the source-health monitor (``--health FILE``), writes what it receives to a
write-ahead spool under ``CITYSOC_HOME/spool/<name>``, drains the spool into
the pipeline, and serves Prometheus metrics with ``--metrics-port``.
"""

from __future__ import annotations

import json
import signal
import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from store.registry import home


@click.group("collect")
def command() -> None:
    """Push and poll collectors (HTTP ingest, MQTT, CoAP, Modbus), tokens, metrics and coverage."""


def _health(path: Path | None, runtime: Any) -> Any:
    if path is None:
        return None
    from collectors.health import SourceExpectation, SourceHealth
    from detections.source_health import SourceSilenceAlerter

    try:
        doc = json.loads(path.read_text("utf-8"))
        entries = doc["sources"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"{path}: expected {{\"sources\": [...]}}: {exc}") from exc
    expectations = [SourceExpectation.from_dict(e, f"{path}: sources[{i}]") for i, e in enumerate(entries)]
    return SourceHealth(expectations, listeners=[SourceSilenceAlerter(runtime.store, runtime.incidents)])


def _run(name: str, metrics_port: int | None, health_file: Path | None,
         start: Callable[[Any, Any, Any], Callable[[], None]]) -> None:
    """Build the runtime and the spool, start the collector, serve until SIGINT/SIGTERM, drain, stop."""
    from collectors.metrics import Metrics, MetricsServer
    from collectors.spool import Spool, SpoolDrainer
    from console.runtime import build_runtime

    runtime = build_runtime(name=f"citysoc-{name}")  # applies CITYSOC_HOME/privacy.json when present
    health = _health(health_file, runtime)
    if health is not None:
        runtime.pipeline.listeners.append(health)
    spool = Spool(home() / "spool" / name)
    metrics = Metrics()
    drainer = SpoolDrainer(spool, runtime.pipeline)
    drainer.start()
    stop_collector = start(spool, metrics, runtime)
    server = None
    if metrics_port is not None:
        server = MetricsServer(lambda: metrics.render(runtime.pipeline.stats,
                                                      {"spool_pending_bytes": spool.pending_bytes()}),
                               port=metrics_port)
        server.start()
        click.echo(f"metrics on http://{server.address[0]}:{server.address[1]}/metrics", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(10.0):
            if health is not None:
                health.check()
    except KeyboardInterrupt:
        pass
    finally:
        stop_collector()
        drainer.stop()
        spool.close()
        if server is not None:
            server.stop()
        runtime.close()


_metrics_option = click.option("--metrics-port", type=int, help="Serve Prometheus metrics on 127.0.0.1:PORT.")
_health_option = click.option("--health", "health_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                              help='JSON {"sources": [{"source", "interval_seconds", "grace", "area", "domain"}]}.')


@command.command()
@click.argument("source")
@click.option("--format", "fmt", required=True, help="Parser of the source's records (see 'citysoc ingest --list').")
def token(source: str, fmt: str) -> None:
    """Issue (or replace) the HTTP ingest token of SOURCE; it is printed once and stored only hashed."""
    from collectors.base import CollectorError
    from collectors.transports.http_ingest import TokenStore

    try:
        click.echo(TokenStore(home() / "ingest-tokens.json").issue(source, fmt))
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from exc


@command.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8514, show_default=True)
@click.option("--max-body", default=16 * 1024 * 1024, show_default=True, help="Largest request body in bytes.")
@_metrics_option
@_health_option
def http(host: str, port: int, max_body: int, metrics_port: int | None, health_file: Path | None) -> None:
    """Serve the NDJSON bulk ingest endpoint (POST /v1/ingest, bearer token per source)."""
    from collectors.transports.http_ingest import HttpIngestApp, HttpIngestServer, TokenStore

    def start(spool: Any, metrics: Any, runtime: Any) -> Callable[[], None]:
        app = HttpIngestApp(TokenStore(home() / "ingest-tokens.json"), spool, metrics, max_body=max_body)
        server = HttpIngestServer(app, host, port)
        server.start()
        click.echo(f"http ingest on http://{server.address[0]}:{server.address[1]}{app.path}", err=True)
        return server.stop

    _run("http", metrics_port, health_file, start)


@command.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="MQTT broker.")
@click.option("--port", default=1883, show_default=True)
@click.option("--topic", "topics", multiple=True, default=["city/+/+/+/telemetry"], show_default=True)
@click.option("--client-id", default="citysoc-collector", show_default=True,
              help="Fixed id of the persistent session (QoS 1 messages wait in it while the collector is down).")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), help="CA file: connect with TLS.")
@_metrics_option
@_health_option
def mqtt(host: str, port: int, topics: tuple[str, ...], client_id: str, tls_ca: str | None,
         metrics_port: int | None, health_file: Path | None) -> None:
    """Subscribe to device telemetry on an MQTT broker (QoS 1, acknowledged after spooling)."""
    import os

    from collectors.transports.mqtt import MqttSubscriber

    def start(spool: Any, metrics: Any, runtime: Any) -> Callable[[], None]:
        subscriber = MqttSubscriber(spool, host, port, topics, client_id, metrics,
                                    username=os.environ.get("CITYSOC_MQTT_USER"),
                                    password=os.environ.get("CITYSOC_MQTT_PASSWORD"), tls_ca=tls_ca)
        subscriber.start()
        click.echo(f"mqtt subscribed to {', '.join(topics)} on {host}:{port}", err=True)
        return subscriber.stop

    _run("mqtt", metrics_port, health_file, start)


@command.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5683, show_default=True, help="UDP port.")
@_metrics_option
@_health_option
def coap(host: str, port: int, metrics_port: int | None, health_file: Path | None) -> None:
    """Receive CoAP/LwM2M reports: POST /telemetry/<area>/<device_type>/<device_id> (JSON or SenML JSON)."""
    from collectors.transports.coap import CoapServer

    def start(spool: Any, metrics: Any, runtime: Any) -> Callable[[], None]:
        server = CoapServer(spool, host, port, metrics)
        server.start()
        click.echo(f"coap on udp {host}:{port}", err=True)
        return server.stop

    _run("coap", metrics_port, health_file, start)


@command.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--interval", default=10.0, show_default=True, help="Seconds between polls of each PLC.")
@_metrics_option
@_health_option
def modbus(config: Path, interval: float, metrics_port: int | None, health_file: Path | None) -> None:
    """Poll holding registers of the PLCs in CONFIG ({"targets": [{plc_id, host, port, unit_id, blocks}]})."""
    from collectors.base import CollectorError
    from collectors.transports.modbus_poll import ModbusPoller, load_targets

    try:
        targets = load_targets(config)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from exc

    def start(spool: Any, metrics: Any, runtime: Any) -> Callable[[], None]:
        stop = threading.Event()
        pollers = [ModbusPoller(spool, target, interval, metrics) for target in targets]
        threads = [threading.Thread(target=p.run, args=(stop,), name=f"modbus-{p.target.plc_id}", daemon=True)
                   for p in pollers]
        for thread in threads:
            thread.start()
        click.echo(f"polling {len(pollers)} PLCs every {interval:g} s", err=True)

        def halt() -> None:
            stop.set()
            for thread in threads:
                thread.join()

        return halt

    _run("modbus", metrics_port, health_file, start)


@command.command()
@click.option("--port", type=int, required=True, help="Metrics port of a running collector.")
def metrics(port: int) -> None:
    """Print the counters per source and stage of a running collector (its --metrics-port)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            click.echo(response.read().decode("utf-8"), nl=False)
    except OSError as exc:
        raise click.ClickException(f"no collector metrics on 127.0.0.1:{port}: {exc}") from exc


@command.command()
@click.option("--hours", default=24.0, show_default=True, help="A device counts as reporting if it sent an "
              "event in this many hours.")
def coverage(hours: float) -> None:
    """Devices registered vs. reporting, per area and domain (NDJSON)."""
    from console.runtime import assets_path
    from enrichment.assets import AssetRegister
    from enrichment.coverage import coverage as compute
    from enrichment.coverage import reporting_assets
    from store.registry import open_store

    path = assets_path()
    if not path.exists():
        raise click.ClickException(f"no system register at {path} (set CITYSOC_ASSETS)")
    register = AssetRegister.load(path)
    with open_store() as store:
        seen = reporting_assets(store, datetime.now(UTC) - timedelta(hours=hours))
    for row in compute(register, seen):
        click.echo(json.dumps({"area": row.area, "domain": row.domain, "registered": row.registered,
                               "reporting": row.reporting, "percent": round(row.percent, 1),
                               "silent": list(row.silent)}, ensure_ascii=False))
