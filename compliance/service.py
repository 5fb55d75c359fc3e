"""The compliance use cases the CLI, the console and the API share: assess a period, generate and archive
a report, record an attestation, export.  Views and commands stay thin shells over these functions.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from compliance.archive import Archived, archive_report, sha256_bytes
from compliance.catalogue import CATALOGUE_DIR, Catalogue, load_catalogue
from compliance.engine import Assessment, assess
from compliance.errors import ComplianceError
from compliance.evidence import Period, rule_inventory
from compliance.reports import build
from enrichment.assets import AssetRegister
from store.base import Store
from store.compliance import Attestation, ComplianceRecords
from store.event import parse_ts
from store.registry import home
from store.sqlite import SQLiteStore


def reports_root() -> Path:
    return Path(os.environ.get("CITYSOC_REPORTS") or home() / "reports")


def records_path(store: Store | None = None) -> Path:
    """The compliance records file: beside the embedded store's file, else in ``$CITYSOC_HOME``."""
    if isinstance(store, SQLiteStore):
        return store.path.parent / "compliance.db"
    return home() / "compliance.db"


def documents_root(store: Store | None = None) -> Path:
    """Where attestation documents are kept, named by their SHA-256 (beside the compliance records)."""
    return records_path(store).parent / "compliance" / "documents"


def rules_from_pack(paths: Sequence[Path] | None = None) -> dict[str, tuple[str, ...]]:
    """Domain -> ids of the rules the detection engine loads (the built-in pack by default)."""
    from detections.pack import default_rule_paths, load_rules

    loaded = load_rules(list(paths) if paths else default_rule_paths())
    return rule_inventory(
        (entry.location.path, entry.compiled.rule_id) for entry in loaded.report.loaded if entry.compiled is not None
    )


def parse_period(start: str | None, end: str | None, now: datetime) -> Period:
    """A period from ISO dates or times; default: the 30 days before now."""
    try:
        end_ts = parse_ts(end) if end else now
        start_ts = parse_ts(start) if start else end_ts - timedelta(days=30)
    except ValueError as exc:
        raise ComplianceError(f"period: {exc}") from exc
    return Period(start_ts, end_ts)


@dataclass
class Context:
    """What an assessment reads; built once per command or request."""

    store: Store
    register: AssetRegister
    records: ComplianceRecords
    catalogue: Catalogue
    rules: Mapping[str, tuple[str, ...]] | None
    register_path: Path | None = None

    def inputs(self) -> dict[str, str]:
        """SHA-256 of every input besides the store (whose queries the manifest lists)."""
        out = {"register_rows": sha256_bytes(repr(sorted(map(repr, self.register.rows()))).encode())}
        if self.register_path is not None and self.register_path.is_file():
            out["register_file"] = sha256_bytes(self.register_path.read_bytes())
        catalogue = hashlib.sha256()
        for path in sorted(CATALOGUE_DIR.glob("*.yml")):
            catalogue.update(path.read_bytes())
        out["catalogue"] = catalogue.hexdigest()
        out["records"] = sha256_bytes(
            repr(
                [(a.control_id, a.subject, a.sha256, a.at) for a in self.records.attestations()]
                + [(s.subject, s.scanned_at, s.open_critical, s.open_high) for s in self.records.scans()]
            ).encode()
        )
        out["rules"] = sha256_bytes(repr(sorted((k, v) for k, v in (self.rules or {}).items())).encode())
        return out


def assessment(ctx: Context, period: Period, now: datetime | None = None, system: str | None = None) -> Assessment:
    return assess(
        ctx.store,
        ctx.register,
        ctx.records,
        ctx.catalogue,
        period,
        ctx.rules,
        now or datetime.now(timezone.utc),
        only_system=system,
    )


def generate(
    ctx: Context,
    kind: str,
    lang: str,
    period: Period,
    actor: str,
    subject: str | None = None,
    formats: tuple[str, ...] = ("html", "pdf"),
    now: datetime | None = None,
    root: Path | None = None,
) -> Archived:
    """Assess, build the report, render and archive it; its manifest hash goes into the audit log.

    ``subject``: the system of a system report, or one indicator for a maturity pack (default: all).
    """
    result = assessment(ctx, period, now, subject if kind == "system" else None)
    data = build(kind, result, lang, subject)
    return archive_report(ctx.store, root or reports_root(), data, result, ctx.inputs(), actor, formats)


def attest(
    ctx: Context,
    control_id: str,
    subject: str,
    actor: str,
    filename: str,
    content: bytes,
    valid_days: int = 365,
    note: str = "",
    now: datetime | None = None,
) -> Attestation:
    """Record a manual attestation; the document is kept under its SHA-256 for the inspectors."""
    control = ctx.catalogue.get(control_id)
    if control.evidence.type.value != "manual":
        raise ComplianceError(f"control {control_id} is evidenced {control.evidence.type.value}, not by attestation")
    if subject != "city" and subject not in {s for s in (a.system or a.id for a in ctx.register)}:
        raise ComplianceError(f"attestation subject {subject!r} is neither 'city' nor a system of the register")
    if not content:
        raise ComplianceError(f"attestation {filename!r} is empty")
    at = now or datetime.now(timezone.utc)
    digest = sha256_bytes(content)
    folder = documents_root(ctx.store)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / digest).write_bytes(content)
    entry = ctx.records.add_attestation(
        control_id, subject, actor, at, Path(filename).name, digest, at + timedelta(days=valid_days), note
    )
    ctx.store.audit(
        actor,
        "compliance.attest",
        f"control:{control_id}",
        {"subject": subject, "sha256": digest, "filename": entry.filename},
    )
    return entry


def default_catalogue() -> Catalogue:
    return load_catalogue()
