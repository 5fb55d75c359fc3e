"""``citysoc demo`` and ``citysoc lab``: plug-in commands registered through entry points.

Thin shells over the lab's library: :mod:`lab.city` (``lab city``), :mod:`lab.scoreboard`
(``lab run``, ``lab benign-day``), :mod:`lab.load` (``lab load``), :mod:`lab.plc` and
:mod:`lab.broker` (``lab plc``, ``lab broker``) and :mod:`lab.telemetry` (``lab emit``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from store.registry import home


@click.command()
@click.option("--no-serve", is_flag=True, help="Exit after the pipeline and print a one-line JSON summary.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
def demo(no_serve: bool, host: str, port: int, seed: int) -> None:
    """Run the lab demo end to end (lab -> collectors -> store -> detections -> playbooks), then serve the console."""
    from lab.demo import DemoError, run_demo

    try:
        result = run_demo(seed=seed)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = result.summary()
    if no_serve:
        click.echo(json.dumps(summary))
        return
    click.echo(f"Demo pipeline finished: {json.dumps(summary)}", err=True)
    click.echo(f"{result.dead_letters} malformed record(s) went to the dead-letter table.", err=True)
    from console.cli import serve

    ctx = click.get_current_context()
    ctx.invoke(serve, host=host, port=port)


@click.group()
def lab() -> None:
    """The simulated city: register, telemetry, attack scenarios, scoreboard and load generator."""


@lab.command("city")
@click.option("--export", "target", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the city's system register here (.csv or .json) for 'citysoc assets import'.")
def city_cmd(target: Path | None) -> None:
    """Check the lab city and summarise it (districts, agencies, systems, devices per sector)."""
    from lab.city import CityError, load_city

    try:
        city = load_city()
    except CityError as exc:
        raise click.ClickException(str(exc)) from exc
    if target is not None:
        city.register.dump(target)
        click.echo(f"{len(city.register)} assets written to {target}", err=True)
    click.echo(json.dumps(city.summary()))


@lab.command("run")
@click.argument("scenarios", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every scenario of lab/scenarios/.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per scenario and line.")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the runs' stores here (default: a temporary CITYSOC_HOME, removed afterwards).")
def run_cmd(scenarios: tuple[str, ...], run_all: bool, as_json: bool, seed: int, home: Path | None) -> None:
    """Replay benign + attack traffic of SCENARIOS through the full pipeline and print the scoreboard."""
    from lab.scenario_spec import ScenarioError
    from lab.scoreboard import ScoreboardError, run_scenarios, table

    if run_all == bool(scenarios):
        raise click.UsageError("name one or more scenarios, or give --all")
    try:
        results = run_scenarios(None if run_all else list(scenarios), seed=seed, home=home)
    except (ScenarioError, ScoreboardError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        for result in results:
            click.echo(json.dumps(result.as_dict()))
    else:
        click.echo(table(results))
    if not all(r.detected for r in results):
        sys.exit(1)


@lab.command("benign-day")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--hours", default=24.0, show_default=True)
@click.option("--rate-scale", default=1.0, show_default=True, help="Multiply every source's rate.")
def benign_day_cmd(seed: int, hours: float, rate_scale: float) -> None:
    """Run a simulated benign day through the full pipeline; every alert is a false positive."""
    from lab.scoreboard import benign_day
    from lab.telemetry import Rates, TelemetryError

    try:
        result = benign_day(seed, hours, Rates().scaled(rate_scale))
    except TelemetryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.as_dict()))


def _address(text: str | None, option: str) -> tuple[str, int] | None:
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{text!r}: expected HOST:PORT", param_hint=option)
    return host, int(port)


@lab.command("load")
@click.option("--eps", required=True, type=float, help="Records per second (steady rate).")
@click.option("--minutes", required=True, type=float)
@click.option("--burst", help="Bursts, e.g. 5x10s/60s: five times the rate for 10 s every 60 s.")
@click.option("--syslog-udp", help="HOST:PORT of a syslog UDP collector.")
@click.option("--syslog-tcp", help="HOST:PORT of a syslog TCP collector.")
@click.option("--mqtt", "mqtt_broker", help="HOST:PORT of the MQTT broker the collector subscribes to.")
@click.option("--http", "http_url", help="URL of the HTTP ingest endpoint (http://HOST:PORT/v1/ingest).")
@click.option("--token", "tokens", multiple=True, help="PARSER=TOKEN of an HTTP ingest source (repeatable).")
@click.option("--seed", default=7, show_default=True, type=int)
def load_cmd(eps: float, minutes: float, burst: str | None, syslog_udp: str | None, syslog_tcp: str | None,
             mqtt_broker: str | None, http_url: str | None, tokens: tuple[str, ...], seed: int) -> None:
    """Send mixed city telemetry to running collectors at a steady rate with bursts; print the achieved rate."""
    from lab.load import Burst, LoadError, Targets, run_load

    pairs = {}
    for item in tokens:
        parser, sep, token = item.partition("=")
        if not sep or not token:
            raise click.BadParameter(f"{item!r}: expected PARSER=TOKEN", param_hint="--token")
        pairs[parser] = token
    try:
        targets = Targets(_address(syslog_udp, "--syslog-udp"), _address(syslog_tcp, "--syslog-tcp"),
                          _address(mqtt_broker, "--mqtt"), http_url, pairs)
        result = run_load(targets, eps, minutes * 60, Burst.parse(burst) if burst else None, seed)
    except LoadError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.as_dict()))


@lab.command("plc")
@click.option("--port", default=5020, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--step-seconds", default=1.0, show_default=True,
              help="Wall-clock seconds per simulated 15-minute process step.")
def plc_cmd(port: int, seed: int, step_seconds: float) -> None:
    """Run the simulated tank PLC as a Modbus/TCP server on 127.0.0.1 (Ctrl-C to stop)."""
    import time

    from lab.plc import SETPOINTS, PlcError, PlcSimulator

    try:
        with PlcSimulator(seed, port) as plc:
            click.echo(f"PLC {plc.plc_id} on 127.0.0.1:{plc.port}; setpoints at {SETPOINTS}", err=True)
            while True:
                time.sleep(step_seconds)
                plc.tick()
    except PlcError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass


@lab.command("broker")
@click.option("--port", type=int, help="Port on 127.0.0.1 (default: a free one).")
def broker_cmd(port: int | None) -> None:
    """Run a Mosquitto MQTT broker on 127.0.0.1 for the lab (Ctrl-C to stop)."""
    import time

    from lab.broker import BrokerError, mosquitto

    try:
        with mosquitto(port) as bound:
            click.echo(f"mosquitto on 127.0.0.1:{bound}", err=True)
            while True:
                time.sleep(3600)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass


@lab.command("emit")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--minutes", default=10, show_default=True, type=int)
@click.option("--attack/--no-attack", default=True, show_default=True)
@click.option("--start", default="2026-11-21T00:00:00Z", show_default=True, help="Start of the telemetry (UTC).")
@click.option("--scenario", "scenario_name", help="Print this attack scenario's benign + attack records instead.")
def emit(seed: int, minutes: int, attack: bool, start: str, scenario_name: str | None) -> None:
    """Print the demo's (or a scenario's) telemetry as NDJSON (channel, ts, malicious, label, line).

    Deterministic: the same seed gives the same bytes.
    """
    from datetime import datetime

    from lab import scenario

    if scenario_name is not None:
        from lab.city import load_city
        from lab.scenario_spec import ScenarioError, load_scenarios
        from lab.scoreboard import scenario_records
        from lab.telemetry import ndjson

        try:
            spec = load_scenarios()[scenario_name]
        except KeyError:
            raise click.ClickException(f"no scenario {scenario_name!r}") from None
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from exc
        sys.stdout.write(ndjson(scenario_records(spec, load_city(), seed)))
        return

    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    emissions = scenario.benign(seed, begin, minutes)
    if attack:
        emissions += scenario.attack(seed, emissions[-1].ts)
    for e in emissions:
        sys.stdout.write(
            json.dumps(
                {
                    "channel": e.channel,
                    "ts": e.ts.isoformat(),
                    "malicious": e.malicious,
                    "label": e.label,
                    "line": e.line,
                }
            )
            + "\n"
        )
    click.echo(f"{len(emissions)} records; data home {home()}", err=True)
