"""``citysoc report``: security-level reports, the city SOC report, maturity evidence packs, verification, export.

Thin shell over :mod:`compliance.service`: every report is archived under ``$CITYSOC_HOME/reports``
(or ``CITYSOC_REPORTS``) with its manifest hashed into the audit log; ``verify`` checks one against
the chain and exits with status 1 when it does not verify.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import click

from compliance import archive, service
from compliance.catalogue import load_catalogue, markdown
from compliance.errors import ComplianceError
from compliance.export import FORMATS, WHAT, export
from console.runtime import assets_path
from enrichment.assets import AssetRegister, RegisterError
from store.compliance import ComplianceRecords
from store.errors import StoreError
from store.event import parse_ts
from store.registry import open_store


@contextmanager
def _context(with_rules: bool = True) -> Iterator[service.Context]:
    path = assets_path()
    try:
        register = AssetRegister.load(path) if path.exists() else AssetRegister()
        catalogue = load_catalogue()
        rules = service.rules_from_pack() if with_rules else None
    except (RegisterError, ComplianceError) as exc:
        raise click.ClickException(str(exc)) from exc
    store = open_store()
    records = ComplianceRecords(service.records_path(store))
    try:
        yield service.Context(store, register, records, catalogue, rules, path)
    except (ComplianceError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        records.close()
        store.close()


def _actor(actor: str | None) -> str:
    return actor or getpass.getuser()


_period_options = [
    click.option("--start", help="Period start (ISO date or time); default: 30 days before --end."),
    click.option("--end", help="Period end (ISO date or time); default: now."),
    click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True),
    click.option("--format", "formats", default="html,pdf", show_default=True, help="Comma-separated: html, pdf."),
    click.option("--actor", help="Who generates the report (audit log); default: the OS user."),
]


def _with_period(func: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_period_options):
        func = option(func)
    return func


def _generate(
    kind: str,
    start: str | None,
    end: str | None,
    lang: str,
    formats: str,
    actor: str | None,
    subject: str | None = None,
) -> None:
    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    if not chosen or any(f not in ("html", "pdf") for f in chosen):
        raise click.BadParameter(f"{formats!r}: give html, pdf or both", param_hint="--format")
    now = datetime.now(timezone.utc)
    with _context() as ctx:
        period = service.parse_period(start, end, now)
        report = service.generate(ctx, kind, lang, period, _actor(actor), subject, chosen, now)
    click.echo(
        json.dumps(
            {
                "id": report.id,
                "path": str(report.path),
                "manifest_sha256": report.manifest_sha256,
                "audit_seq": report.audit_seq,
                "retain_until": report.manifest["retain_until"],
                "counts": report.manifest["counts"],
            },
            ensure_ascii=False,
        )
    )


@click.group(name="report")
def command() -> None:
    """Compliance reports from live data: per system, city-wide, maturity evidence; verify; export."""


@command.command(name="system")
@click.argument("system_id")
@_with_period
def system_cmd(system_id: str, start: str | None, end: str | None, lang: str, formats: str, actor: str | None) -> None:
    """Security-level report of SYSTEM_ID (a system of the register)."""
    _generate("system", start, end, lang, formats, actor, system_id)


@command.command(name="city")
@_with_period
def city_cmd(start: str | None, end: str | None, lang: str, formats: str, actor: str | None) -> None:
    """City-wide SOC report for the provincial People's Committee."""
    _generate("city", start, end, lang, formats, actor)


@command.command(name="maturity")
@click.option("--indicator", help="One indicator or KPI id (e.g. V.NS.20.01); default: all of them.")
@_with_period
def maturity_cmd(
    indicator: str | None, start: str | None, end: str | None, lang: str, formats: str, actor: str | None
) -> None:
    """Maturity evidence pack: every indicator and KPI (or one) with drill-down to failing systems."""
    _generate("maturity", start, end, lang, formats, actor, indicator)


@command.command(name="verify")
@click.argument("ref")
def verify_cmd(ref: str) -> None:
    """Check a report (id, archive directory, or any copy of a report file) against the audit chain."""
    with open_store() as store:
        try:
            result = archive.verify(store, service.reports_root(), ref)
        except ComplianceError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
    if not result.ok:
        raise SystemExit(1)


@command.command(name="list")
def list_cmd() -> None:
    """Archived reports with their retention date (NDJSON)."""
    try:
        for item in archive.list_reports(service.reports_root()):
            click.echo(json.dumps(item, ensure_ascii=False))
    except ComplianceError as exc:
        raise click.ClickException(str(exc)) from exc


@command.command(name="export")
@click.option("--what", type=click.Choice(WHAT), required=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
@click.option("--start", help="Evidence period start (ISO); default: 30 days before --end.")
@click.option("--end", help="Evidence period end (ISO); default: now.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="File; default: stdout.")
@click.option("--actor", help="Who exports (audit log); default: the OS user.")
def export_cmd(what: str, fmt: str, start: str | None, end: str | None, output: Path | None, actor: str | None) -> None:
    """Export the register, the incidents or the evidence in an open format (JSON or CSV)."""
    now = datetime.now(timezone.utc)
    with _context(with_rules=what == "evidence") as ctx:
        result = service.assessment(ctx, service.parse_period(start, end, now), now) if what == "evidence" else None
        text = export(what, fmt, ctx.store, _actor(actor), register=ctx.register, assessment=result)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{what} written to {output}", err=True)


@command.command(name="attest")
@click.argument("control_id")
@click.argument("subject")
@click.argument("document", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--valid-days", default=365, show_default=True, type=click.IntRange(1, 3660))
@click.option("--note", default="")
@click.option("--actor", help="Who attests (audit log); default: the OS user.")
def attest_cmd(control_id: str, subject: str, document: Path, valid_days: int, note: str, actor: str | None) -> None:
    """Record DOCUMENT as the attestation of manual control CONTROL_ID for SUBJECT (a system id or 'city')."""
    with _context(with_rules=False) as ctx:
        entry = service.attest(
            ctx, control_id, subject, _actor(actor), document.name, document.read_bytes(), valid_days, note
        )
    click.echo(
        json.dumps(
            {
                "id": entry.id,
                "control": entry.control_id,
                "subject": entry.subject,
                "sha256": entry.sha256,
                "valid_until": entry.valid_until.isoformat(),
            }
        )
    )


@command.command(name="scan")
@click.argument("system_id")
@click.option("--scanned-at", required=True, help="When the scan ran (ISO).")
@click.option("--critical", type=click.IntRange(0), required=True)
@click.option("--high", type=click.IntRange(0), required=True)
@click.option("--total", type=click.IntRange(0), required=True)
@click.option("--tool", required=True, help="Scanner name and version.")
@click.option("--actor", help="Who records it (audit log); default: the OS user.")
def scan_cmd(
    system_id: str, scanned_at: str, critical: int, high: int, total: int, tool: str, actor: str | None
) -> None:
    """Record the open findings of a vulnerability scan of SYSTEM_ID."""
    with _context(with_rules=False) as ctx:
        if system_id not in {a.system or a.id for a in ctx.register}:
            raise click.ClickException(f"{system_id!r} is not a system of the register")
        try:
            when = parse_ts(scanned_at)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--scanned-at") from exc
        who = _actor(actor)
        scan = ctx.records.add_scan(system_id, when, critical, high, total, tool, who, datetime.now(timezone.utc))
        ctx.store.audit(
            who,
            "compliance.scan",
            f"system:{system_id}",
            {"critical": critical, "high": high, "total": total, "tool": tool},
        )
    click.echo(json.dumps({"id": scan.id, "system": system_id, "critical": critical, "high": high}))


@command.command(name="controls")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the control table of docs/compliance.md.")
def controls_cmd(as_markdown: bool) -> None:
    """The control catalogue: id, levels, evidence type and query (or the docs table with --markdown)."""
    try:
        catalogue = load_catalogue()
    except ComplianceError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_markdown:
        click.echo(markdown(catalogue), nl=False)
        return
    for c in catalogue.controls:
        levels = ",".join(map(str, c.levels)) or "city"
        click.echo(f"{c.id}\t{levels}\t{c.evidence.type.value}\t{c.evidence.query or '-'}\t{c.title_en}")
