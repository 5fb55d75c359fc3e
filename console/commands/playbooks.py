"""``citysoc playbooks``: validate, list, run, drill, approve, and CACAO 2.0 export/import.

Thin shells over :mod:`playbooks.model`, :mod:`playbooks.runner`,
:mod:`playbooks.drill`, :mod:`playbooks.approvals` and :mod:`playbooks.cacao`.
A PLAYBOOK argument is a playbook id from the library (``CITYSOC_PLAYBOOKS``
adds directories) or the path of a YAML file.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import yaml


def _library(extra: Path | None = None) -> Any:
    from playbooks.actions import REGISTRY
    from playbooks.model import PlaybookLibrary
    from playbooks.worker import library_paths

    return PlaybookLibrary.load([*library_paths(), *([extra] if extra else [])], REGISTRY)


def _playbook(ref: str) -> Any:
    from playbooks.actions import REGISTRY
    from playbooks.model import PlaybookError, load_file

    path = Path(ref)
    try:
        if path.suffix in (".yml", ".yaml") and path.exists():
            return load_file(path, REGISTRY)
        return _library().get(ref)
    except PlaybookError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("playbooks")
def command() -> None:
    """Response playbooks: validate, list, run, drill, approve, CACAO export/import."""


@command.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Validate playbook files (default: the library); prints every error with file:line and step, exits 1 on any."""
    from playbooks.actions import REGISTRY
    from playbooks.model import PlaybookErrors, PlaybookLibrary
    from playbooks.worker import library_paths

    targets = list(paths) or library_paths()
    try:
        library = PlaybookLibrary.load(targets, REGISTRY, collect=True)
    except PlaybookErrors as exc:
        for error in exc.errors:
            click.echo(str(error))
        click.echo(f"{len(exc.errors)} error(s)", err=True)
        sys.exit(1)
    click.echo(f"{len(library)} playbook(s) valid")


@command.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_playbooks(as_json: bool) -> None:
    """The library: id, version, trigger, steps and the impact tiers they use."""
    from playbooks.actions import REGISTRY

    for pb in _library():
        impacts = sorted({REGISTRY.get(s.action).impact.value for s in pb.steps if s.action})
        row = {
            "id": pb.id,
            "name": pb.name,
            "version": pb.version,
            "steps": len(pb.steps),
            "approvals": sum(1 for s in pb.steps if s.kind == "approval"),
            "impacts": impacts,
            "tags": list(pb.trigger.tags),
            "min_severity": pb.trigger.min_severity.label,
            "source": pb.source,
        }
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{pb.id}\tv{pb.version}\t{len(pb.steps)} steps\t{','.join(impacts)}\t{pb.name}")


@command.command("run")
@click.argument("playbook")
@click.option("--incident", "incident_id", required=True, help="Incident id the run works on.")
def run(playbook: str, incident_id: str) -> None:
    """Start a run on a worker (``citysoc worker`` must be running); prints the run id."""
    from playbooks.actions import REGISTRY
    from playbooks.runner import new_run
    from playbooks.worker import create_celery, enqueuer
    from store.errors import NotFound
    from store.registry import open_store

    pb = _playbook(playbook)
    with open_store() as store:
        try:
            store.get_incident(incident_id)
        except NotFound as exc:
            raise click.ClickException(f"no incident {incident_id!r}") from exc
        started = new_run(store, pb, incident_id, REGISTRY)
    enqueuer(create_celery())(started.id)
    click.echo(started.id)


@command.command("drill")
@click.argument("playbook")
@click.option("--incident", "incident_id", help="Drill on this stored incident (the run is recorded as a drill).")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A lab scenario YAML (incident, events, approvers); runs in a throw-away store.",
)
@click.option("--approve", "approvers", multiple=True, help="Scripted approver USER:ROLE[,ROLE]; repeatable.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
def drill(
    playbook: str,
    incident_id: str | None,
    scenario: Path | None,
    approvers: tuple[str, ...],
    fmt: str,
    output: Path | None,
) -> None:
    """Run a playbook with every action simulated and print the drill report."""
    from playbooks.drill import approve_all, load_scenario, run_drill
    from store.registry import home, open_store
    from store.sqlite import SQLiteStore

    if (incident_id is None) == (scenario is None):
        raise click.UsageError("give exactly one of --incident and --scenario")
    pb = _playbook(playbook)
    people = [_person(a) for a in approvers]
    if scenario is not None:
        with tempfile.TemporaryDirectory(prefix="citysoc-drill-") as tmp:
            store = SQLiteStore(Path(tmp) / "drill.db")
            try:
                incident, scripted = load_scenario(scenario, store)
                script = approve_all(*(people or scripted)) if (people or scripted) else None
                report = run_drill(store, pb, incident, script, home=Path(tmp))
            finally:
                store.close()
    else:
        with open_store() as real:
            script = approve_all(*people) if people else None
            report = run_drill(real, pb, incident_id, script, home=home())
    text = report.to_json() if fmt == "json" else report.to_markdown()
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"drill report written to {output} ({report.status})", err=True)
    else:
        click.echo(text)


def _person(text: str) -> tuple[str, list[str]]:
    user, sep, roles = text.partition(":")
    if not sep or not user or not roles:
        raise click.BadParameter(f"{text!r}: expected USER:ROLE[,ROLE]", param_hint="--approve")
    return user, [r for r in roles.split(",") if r]


@command.command("approve")
@click.argument("run_id", required=False)
@click.argument("step", required=False)
@click.option("--user", help="A console user; their stored roles are what counts.")
@click.option("--reason", help="Why (required, recorded in the audit log).")
@click.option("--reject", is_flag=True, help="Reject instead of approve.")
@click.option("--pending", is_flag=True, help="List the approvals waiting for --user (or all) and exit.")
def approve(
    run_id: str | None, step: str | None, user: str | None, reason: str | None, reject: bool, pending: bool
) -> None:
    """Approve or reject a waiting approval step as a console user."""
    from playbooks.approvals import ApprovalError, decide, pending_approvals
    from playbooks.worker import create_celery, enqueuer
    from store.errors import NotFound
    from store.registry import open_store

    with open_store() as store:
        roles: tuple[str, ...] = ("admin",)
        if user:
            try:
                roles = tuple(store.get_user(user).roles)
            except NotFound as exc:
                raise click.ClickException(f"no console user {user!r}") from exc
        if pending:
            for p in pending_approvals(store, roles):
                click.echo(
                    f"{p.run_id}\t{p.step_ref}\t{p.playbook}\t{p.incident_id or '-'}\t"
                    f"{len([a for a in p.approvals if a.approve])}/{p.quorum}\t{'|'.join(p.required_roles)}\t"
                    f"until {p.deadline.isoformat()}\t{p.description}"
                )
            return
        if not (run_id and step and user and reason is not None):
            raise click.UsageError("RUN_ID, STEP, --user and --reason are required (or use --pending)")
        enqueue = enqueuer(create_celery())

        class Resume:
            def resume(self, rid: str) -> None:
                enqueue(rid)

        try:
            left = decide(store, run_id, step, user, roles, not reject, reason, Resume())
        except ApprovalError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo("decided; the run continues" if left is None else f"recorded; {left.remaining} more approval(s) needed")


@command.command("export-cacao")
@click.argument("playbook")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path))
def export_cacao_cmd(playbook: str, output: Path | None) -> None:
    """Export a playbook as an OASIS CACAO 2.0 JSON document."""
    from playbooks.cacao import export_cacao

    text = json.dumps(export_cacao(_playbook(playbook)), indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


@command.command("import-cacao")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the playbook YAML here.")
def import_cacao_cmd(file: Path, output: Path | None) -> None:
    """Import a CACAO 2.0 JSON playbook; prints what did not map (path: reason) on stderr."""
    from playbooks.actions import REGISTRY
    from playbooks.cacao import import_cacao
    from playbooks.model import PlaybookError, to_dict

    try:
        document = json.loads(file.read_text(encoding="utf-8"))
        pb, unmapped = import_cacao(document, REGISTRY, source=str(file))
    except (json.JSONDecodeError, PlaybookError) as exc:
        raise click.ClickException(f"{file}: {exc}") from exc
    for item in unmapped:
        click.echo(f"not mapped: {item.path}: {item.reason}", err=True)
    if pb is None:
        raise click.ClickException(f"{file}: nothing in it maps to a CitySOC playbook")
    text = yaml.safe_dump(to_dict(pb), sort_keys=False, allow_unicode=True)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text)
