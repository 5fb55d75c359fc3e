"""The report archive: each report with its manifest, hashed into the audit log, kept 10 years by default.

An archived report is a directory ``$CITYSOC_HOME/reports/<id>/`` holding the rendered files
(``report.html``, ``report.pdf``), the report data (``data.json``) and ``manifest.json``: what data the
report used (queries, time window, counts, hashes of its inputs), the SHA-256 of every file, and the
retention date.  The SHA-256 of the manifest is appended to the hash-chained audit log
(action ``compliance.report``), so :func:`verify` can prove that neither a file nor the manifest
changed since.  Nothing in CitySOC deletes an archived report; :func:`list_reports` shows the
retention date of each.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from compliance.engine import Assessment
from compliance.errors import ArchiveError
from compliance.render import to_html, to_pdf
from store.base import Store
from store.errors import AuditChainBroken
from store.event import format_ts, utc

RETENTION_YEARS = 10
AUDIT_ACTION = "compliance.report"
MANIFEST = "manifest.json"
_ID = re.compile(r"RPT-\d{8}-[0-9a-f]{12}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


@dataclass(frozen=True)
class Archived:
    id: str
    path: Path
    manifest: Mapping[str, Any]
    manifest_sha256: str
    audit_seq: int


def archive_report(
    store: Store,
    root: Path,
    data: Mapping[str, Any],
    assessment: Assessment,
    inputs: Mapping[str, str],
    actor: str,
    formats: tuple[str, ...] = ("html", "pdf"),
    retention_years: int = RETENTION_YEARS,
) -> Archived:
    """Render ``data`` in ``formats``, write the archive directory and chain its manifest into the audit log.

    ``inputs`` maps each input (register, catalogue, records) to the SHA-256 of its content.
    """
    if retention_years < RETENTION_YEARS:
        raise ArchiveError(f"retention of {retention_years} years is below the legal minimum of {RETENTION_YEARS}")
    generated = utc(assessment.generated)
    report_id = f"RPT-{generated:%Y%m%d}-{uuid.uuid4().hex[:12]}"
    directory = root / report_id
    try:
        directory.mkdir(parents=True, exist_ok=False)
        files: dict[str, bytes] = {"data.json": json.dumps(data, ensure_ascii=False, indent=2, default=str).encode()}
        if "html" in formats:
            files["report.html"] = to_html(dict(data), report_id).encode("utf-8")
        if "pdf" in formats:
            files["report.pdf"] = to_pdf(dict(data), report_id)
        for name, content in files.items():
            (directory / name).write_bytes(content)
        manifest = {
            "id": report_id,
            "kind": data["kind"],
            "lang": data["lang"],
            "subject": data["subject"],
            "window": dict(data["period"]),
            "generated": format_ts(generated),
            "catalogue_version": assessment.catalogue_version,
            "queries": [dict(q) for q in assessment.queries],
            "counts": {
                **assessment.counts(),
                "systems": len(assessment.systems),
                "incidents": len(assessment.incidents),
                "drill_runs": len(assessment.drill_runs),
                "assets_reporting": len(assessment.activity),
            },
            "inputs": dict(inputs),
            "files": {name: sha256_bytes(content) for name, content in files.items()},
            "retention_years": retention_years,
            "retain_until": format_ts(_add_years(generated, retention_years)),
            "actor": actor,
        }
        text = canonical(manifest)
        (directory / MANIFEST).write_bytes(text)
    except OSError as exc:
        raise ArchiveError(f"cannot write the report archive {directory}: {exc}") from exc
    digest = sha256_bytes(text)
    entry = store.audit(
        actor,
        AUDIT_ACTION,
        f"report:{report_id}",
        {"manifest_sha256": digest, "kind": data["kind"], "retain_until": manifest["retain_until"]},
    )
    return Archived(report_id, directory, manifest, digest, entry.seq)


@dataclass
class Verification:
    report_id: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    manifest_sha256: str = ""
    audit_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.report_id,
            "ok": self.ok,
            "problems": self.problems,
            "manifest_sha256": self.manifest_sha256,
            "audit_seq": self.audit_seq,
        }


def _audit_entry(store: Store, report_id: str) -> Any:
    offset = 0
    while True:
        page = store.audit_entries(limit=1000, offset=offset)
        for entry in page:
            if entry.action == AUDIT_ACTION and entry.object == f"report:{report_id}":
                return entry
        if len(page) < 1000:
            return None
        offset += 1000


def is_report_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


def read_manifest(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"{directory / MANIFEST}: unreadable manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise ArchiveError(f"{directory / MANIFEST}: not a manifest")
    return data


def find_archive(root: Path, ref: str) -> Path:
    """The archive directory of a report id, of an archive directory, or of a file (archived or a copy)."""
    if _ID.fullmatch(ref):
        directory = root / ref
        if not (directory / MANIFEST).is_file():
            raise ArchiveError(f"no archived report {ref} under {root}")
        return directory
    path = Path(ref)
    if path.is_dir() and (path / MANIFEST).is_file():
        return path
    if not path.is_file():
        raise ArchiveError(f"{ref} is neither a report id nor a file")
    if path.name != MANIFEST and (path.parent / MANIFEST).is_file():
        return path.parent
    digest = sha256_file(path)
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError):
            continue
        if digest in files.values():
            return manifest.parent
    raise ArchiveError(f"{ref}: its SHA-256 {digest} matches no archived report: unknown or altered")


def verify(store: Store, root: Path, ref: str) -> Verification:
    """Check an archived report: files against its manifest, the manifest against its audit entry, the chain."""
    directory = find_archive(root, ref)
    report_id = directory.name
    result = Verification(report_id, ok=False)
    try:
        text = (directory / MANIFEST).read_bytes()
        manifest = json.loads(text)
    except (OSError, ValueError) as exc:
        result.problems.append(f"{directory / MANIFEST}: unreadable manifest: {exc}")
        return result
    result.manifest_sha256 = sha256_bytes(text)
    for name, expected in sorted(manifest.get("files", {}).items()):
        path = directory / name
        if not path.is_file():
            result.problems.append(f"{name}: missing")
        elif sha256_file(path) != expected:
            result.problems.append(f"{name}: SHA-256 differs from the manifest (file altered)")
    entry = _audit_entry(store, report_id)
    if entry is None:
        result.problems.append(f"no audit entry for report:{report_id}")
    else:
        result.audit_seq = entry.seq
        if entry.details.get("manifest_sha256") != result.manifest_sha256:
            result.problems.append("manifest SHA-256 differs from the audit log (manifest altered)")
    try:
        store.verify_audit()
    except AuditChainBroken as exc:
        result.problems.append(f"audit chain: {exc}")
    result.ok = not result.problems
    return result


def list_reports(root: Path) -> list[dict[str, Any]]:
    out = []
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArchiveError(f"{manifest}: unreadable manifest: {exc}") from exc
        out.append({k: data.get(k) for k in ("id", "kind", "lang", "subject", "window", "generated", "retain_until")})
    return out
