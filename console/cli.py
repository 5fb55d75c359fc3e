"""The ``citysoc`` command line: thin commands over library functions.

Commands of higher packages (the lab's ``demo`` and ``lab``) are plug-ins,
found through the ``citysoc.commands`` entry-point group, so the console never
imports the lab.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click

from playbooks.connectors import redact
from store.registry import home


class PluginGroup(click.Group):
    """A click group that also offers the commands registered by other packages."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="citysoc.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            ep = self._plugins().get(cmd_name)
            if ep is not None:
                command = ep.load()
        return command


@click.group(cls=PluginGroup)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """CitySOC: security operations for smart-city IT, OT and IoT."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # a connector secret echoed back by a receiver never reaches the log
    redact.install()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the web console and REST API."""
    from console.app import create_app
    from console.auth import ensure_admin
    from store.registry import open_store

    with open_store() as store:
        password = ensure_admin(store)
    if password:
        click.echo(f"Console user 'admin' created with password: {password}", err=True)
        click.echo("You will be asked to change it at first login.", err=True)
    click.echo(f"CitySOC console on http://{host}:{port}/ (data in {home()})", err=True)
    app = create_app()
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@cli.command()
@click.option("--concurrency", default=2, show_default=True, type=int)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--pool", default="prefork", show_default=True, type=click.Choice(["prefork", "solo", "threads"]))
def worker(concurrency: int, loglevel: str, pool: str) -> None:
    """Run a Celery worker for playbook runs (broker: CITYSOC_BROKER_URL or the embedded one)."""
    from playbooks.worker import QUEUE, create_celery

    app = create_celery()
    app.worker_main(
        [
            "worker",
            "-Q",
            QUEUE,
            "-c",
            str(concurrency),
            "--pool",
            pool,
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@cli.command()
@click.option("--format", "fmt", help="Parser name (see 'citysoc ingest --list').")
@click.option("--list", "list_parsers", is_flag=True, help="List the parsers and exit.")
@click.option("--udp", type=int, help="Listen for syslog on this UDP port of --host.")
@click.option("--tcp", type=int, help="Listen for syslog on this TCP port of --host.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--follow", is_flag=True, help="Keep tailing the files.")
@click.option("--parse-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Parse in this many worker processes; this process enriches and stores (0: parse inline).")
@click.option("--source", "sources", multiple=True, type=(str, click.Path(path_type=Path)), metavar="FORMAT PATH",
              help="Also read PATH with parser FORMAT (repeatable): one process for files of several formats.")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def ingest(
    fmt: str | None,
    list_parsers: bool,
    udp: int | None,
    tcp: int | None,
    host: str,
    follow: bool,
    parse_workers: int,
    sources: tuple[tuple[str, Path], ...],
    files: tuple[Path, ...],
) -> None:
    """Collect events from files or syslog sockets into the store, with detection.

    FILES and the syslog sockets are read with --format; --source adds files of any format.
    On a host of N cores, run N of these processes into one store, each with its share of the
    sources (docs/collectors.md).
    """
    import threading

    from collectors.base import CollectorError, get_parser, parsers

    if list_parsers:
        for cls in parsers():
            click.echo(f"{cls.name}\t{cls.dataset}\t{cls.description}")
        return
    if not fmt and (files or udp is not None or tcp is not None):
        raise click.UsageError("--format is required for FILES and --udp/--tcp (see --list)")
    if not fmt and not sources:
        raise click.UsageError("--format or --source is required (see --list)")
    try:  # every parser named, before anything starts
        parser = get_parser(fmt) if fmt else None
        readers = [(get_parser(name), path) for name, path in sources]
    except CollectorError as exc:
        raise click.UsageError(str(exc)) from None
    if parser is not None:
        readers[:0] = [(parser, path) for path in files]
    from collectors.pipeline import settle_heap
    from collectors.transports.files import FileCollector
    from collectors.transports.syslog import SyslogServer
    from console.runtime import build_runtime

    runtime = build_runtime(parse_workers=parse_workers)
    stop = threading.Event()
    server = None
    if parser is not None and (udp is not None or tcp is not None):
        server = SyslogServer(runtime.pipeline, parser, host=host, udp_port=udp, tcp_port=tcp)
        server.start()
        click.echo(f"syslog on udp {server.udp_address} tcp {server.tcp_address}", err=True)
    collectors = [FileCollector(runtime.pipeline, reader, path, home() / "state") for reader, path in readers]
    settle_heap()  # a collector process from here on
    try:
        if follow or server is not None:
            threads = [threading.Thread(target=c.follow, args=(stop,), daemon=True) for c in collectors]
            for t in threads:
                t.start()
            stop.wait()
        else:
            for collector in collectors:  # with parse workers, the next file is read while earlier ones are parsed
                collector.run_once(drain=False)
            runtime.pipeline.drain()  # every batch stored and checkpointed before the counters are printed
    except KeyboardInterrupt:
        stop.set()
    finally:
        if server is not None:
            server.stop()
        runtime.pipeline.close()
    click.echo(json.dumps(runtime.pipeline.stats.as_dict()))


@cli.command()
@click.option(
    "--rules",
    "rule_paths",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Sigma rule file or directory (repeatable).",
)
@click.option("--format", "fmt", default=None, help="Parser name; default: detect per record.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def hunt(rule_paths: tuple[Path, ...], fmt: str | None, inputs: tuple[Path, ...]) -> None:
    """Run Sigma rules over log files offline; one NDJSON line per match on stdout."""
    from detections.hunt import hunt_files
    from detections.pack import load_rules

    rules = load_rules(list(rule_paths))
    summary = hunt_files(rules, list(inputs), fmt, out=sys.stdout, progress=sys.stderr.isatty())
    click.echo(json.dumps(summary), err=True)


@cli.command()
@click.option("--markdown", is_flag=True, help="Print docs/schema.md.")
def schema(markdown: bool) -> None:
    """Show the event schema."""
    from store import schema as schema_mod

    if markdown:
        click.echo(schema_mod.markdown(), nl=False)
    else:
        for spec in schema_mod.FIELDS.values():
            click.echo(f"{spec.name}\t{spec.type.value}\t{spec.classification.value}")


@cli.command("dead-letters")
@click.option("--limit", default=50, show_default=True)
def dead_letters(limit: int) -> None:
    """List records that could not be ingested, with source, offset and reason (NDJSON)."""
    from store.registry import open_store

    with open_store() as store:
        for dl in store.list_dead_letters(limit=limit):
            click.echo(
                json.dumps(
                    {
                        "id": dl.id,
                        "at": dl.at.isoformat(),
                        "source": dl.source,
                        "offset": dl.offset,
                        "reason": dl.reason,
                        "raw": dl.raw,
                    },
                    ensure_ascii=False,
                )
            )


@cli.command("audit-verify")
def audit_verify() -> None:
    """Verify the hash chain of the audit log."""
    from store.errors import AuditChainBroken
    from store.registry import open_store

    with open_store() as store:
        try:
            count = store.verify_audit()
        except AuditChainBroken as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"audit_entries": count, "chain": "ok"}))


def _add_command_groups() -> None:
    from console.commands import discover

    for command in discover():
        if command.name in cli.commands:
            raise RuntimeError(f"command {command.name!r} is defined twice")
        cli.add_command(command)


_add_command_groups()


def main() -> None:
    cli(prog_name="citysoc")


if __name__ == "__main__":
    main()
