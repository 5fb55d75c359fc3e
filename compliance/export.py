"""Open-format export of the register, the incidents and the evidence (JSON or CSV).

Decree 269/2025 Điều 38.4 (as quoted in the issue) asks that all data be handed over in open
formats.  CSV cells are made injection-safe: a cell that a spreadsheet would read as a formula
(starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) gets a leading apostrophe.  Every
export is recorded in the audit log (action ``compliance.export``) with its row count and SHA-256.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from compliance.engine import Assessment
from compliance.errors import ComplianceError
from enrichment.assets import AssetRegister
from store.base import Store
from store.event import format_ts

WHAT = ("register", "incidents", "evidence")
FORMATS = ("json", "csv")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """The CSV text of a value, neutralised if a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        text = " ".join(str(v) for v in value)
    elif isinstance(value, (dict, Mapping)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def register_rows(register: AssetRegister) -> list[dict[str, Any]]:
    return register.rows()


def incident_rows(store: Store) -> list[dict[str, Any]]:
    rows = []
    offset = 0
    while True:
        page = store.list_incidents(limit=500, offset=offset)
        for i in page:
            rows.append(
                {
                    "id": i.id,
                    "title": i.title,
                    "severity": i.severity.label,
                    "status": i.status.value,
                    "created": format_ts(i.created),
                    "updated": format_ts(i.updated),
                    "first_event_time": format_ts(i.first_event_time),
                    "last_event_time": format_ts(i.last_event_time),
                    "group_key": i.group_key,
                    "alert_count": i.alert_count,
                    "mttd_seconds": i.mttd_seconds,
                    "assignee": i.assignee,
                    "verdict": i.verdict,
                    "entities": {k: list(v) for k, v in i.entities.items()},
                    "tags": list(i.tags),
                }
            )
        if len(page) < 500:
            return rows
        offset += 500


def evidence_rows(assessment: Assessment) -> list[dict[str, Any]]:
    return [r.as_dict() for r in assessment.all_results()]


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(rows), ensure_ascii=False, indent=2, default=str) + "\n"


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([safe_cell(c) for c in columns])
    for row in rows:
        writer.writerow([safe_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def export(
    what: str,
    fmt: str,
    store: Store,
    actor: str,
    register: AssetRegister | None = None,
    assessment: Assessment | None = None,
) -> str:
    """The export text; recorded in the audit log."""
    if what not in WHAT:
        raise ComplianceError(f"export --what {what!r}: choose one of {', '.join(WHAT)}")
    if fmt not in FORMATS:
        raise ComplianceError(f"export --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    rows: Iterable[Mapping[str, Any]]
    if what == "register":
        if register is None:
            raise ComplianceError("the register export needs the system register")
        rows = register_rows(register)
    elif what == "incidents":
        rows = incident_rows(store)
    else:
        if assessment is None:
            raise ComplianceError("the evidence export needs an assessment (a period)")
        rows = evidence_rows(assessment)
    rows = list(rows)
    text = to_json(rows) if fmt == "json" else to_csv(rows)
    store.audit(
        actor,
        "compliance.export",
        f"export:{what}",
        {"what": what, "format": fmt, "rows": len(rows), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()},
    )
    return text
