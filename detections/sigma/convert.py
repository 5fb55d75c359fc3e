"""Sigma rules converted to queries with pySigma backends, and retro-hunts over the embedded store.

``citysoc rules convert --target sqlite|lucene|esql|eql`` prints each loaded rule as a query of
the target; the rule's fields are already CitySOC schema names (the loader applied
:func:`detections.sigma.pipelines.citysoc_pipeline`), so the queries run against CitySOC data:
Lucene / ES|QL / EQL against the Elasticsearch indices (ECS documents), SQLite against the
embedded store through the view built here.

Retro-hunt (:func:`retro_hunt`): the embedded store keeps each event as its ECS JSON document
in ``events.doc``.  The pySigma SQLite backend writes ``SELECT * FROM logs WHERE `field` ...``,
so the hunt opens the store read-only and creates a TEMP VIEW ``logs`` whose columns are
``json_extract(doc, '$."a"."b"')`` for every field the rules use (``COLLATE NOCASE``: Sigma
strings are case-insensitive).  The SQL query selects candidates; each candidate is then
confirmed by the in-process matcher with its logsource routing, because the backend's query
knows nothing of logsources.  Field names reach SQL only as quoted identifiers and JSON paths
built from the schema, never as raw text from a rule or an event.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigma.backends.sqlite import sqliteBackend
from sigma.conversion.base import Backend
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from detections.errors import DetectionError
from detections.sigma.loader import LoadReport
from detections.sigma.matcher import CompiledRule, RuleSet
from store.event import Event, format_ts, parse_ts
from store.schema import FieldType, lookup

TARGETS: tuple[str, ...] = ("sqlite", "lucene", "esql", "eql")


class ConversionError(DetectionError):
    """A conversion target is unknown or its backend is not installed."""


def backend(target: str) -> Backend:
    """The pySigma backend of a target (no extra pipeline: rules already carry schema names)."""
    if target == "sqlite":
        return sqliteBackend()
    if target in ("lucene", "esql", "eql"):
        try:
            from sigma.backends.elasticsearch import EqlBackend, ESQLBackend, LuceneBackend
        except ImportError as exc:
            raise ConversionError(
                f"target {target!r} needs pysigma-backend-elasticsearch "
                "(pip install pysigma-backend-elasticsearch==2.1.1)"
            ) from exc
        classes: dict[str, type[Backend]] = {"lucene": LuceneBackend, "esql": ESQLBackend, "eql": EqlBackend}
        return classes[target]()
    raise ConversionError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


@dataclass(frozen=True)
class Conversion:
    rule_id: str
    title: str
    path: str
    line: int | None
    queries: tuple[str, ...] = ()
    error: str | None = None


def convert(report: LoadReport, target: str) -> Iterator[Conversion]:
    """Every loaded rule as queries of ``target``; a rule the backend refuses carries its reason."""
    converter = backend(target)
    for entry in report.loaded:
        if not isinstance(entry.rule, SigmaRule) or entry.compiled is None:
            continue
        rule = copy.deepcopy(entry.rule)  # backends run their own processing on the rule they get
        base = Conversion(entry.compiled.rule_id, entry.compiled.title, entry.location.path, entry.location.line)
        try:
            queries = converter.convert_rule(rule)
        except SigmaError as exc:
            yield Conversion(base.rule_id, base.title, base.path, base.line, error=str(exc))
            continue
        yield Conversion(base.rule_id, base.title, base.path, base.line, tuple(str(q) for q in queries))


def _json_path(name: str) -> str:
    spec = lookup(name)
    if spec is not None and spec.type is FieldType.FLATTENED and spec.name != name:
        parts = [*spec.name.split("."), name[len(spec.name) + 1 :]]
    else:
        parts = name.split(".") if name != "@timestamp" else [name]
    return "$" + "".join('."' + part.replace('"', '""') + '"' for part in parts)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _view_sql(fields: Iterable[str], since: str | None, until: str | None) -> str:
    columns = ["id AS \"event.id\"", "doc AS \"__doc\""]
    for name in sorted(set(fields)):
        if lookup(name) is None or name == "event.id":
            continue  # an unknown field is absent from every event: the backend's column is missing
        columns.append(f"json_extract(doc, {_sql_literal(_json_path(name))}) COLLATE NOCASE AS {_identifier(name)}")
    where = []
    if since is not None:
        where.append(f"ts >= {_sql_literal(since)}")
    if until is not None:
        where.append(f"ts < {_sql_literal(until)}")
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    # Only schema field names (checked above) become quoted identifiers and JSON paths, and the
    # times are normalised by format_ts before quoting: nothing from a rule or an event is raw SQL.
    return f"CREATE TEMP VIEW logs AS SELECT {', '.join(columns)} FROM events{clause}"  # noqa: S608


@dataclass(frozen=True)
class RetroMatch:
    rule: CompiledRule
    event: Event


@dataclass
class RetroSummary:
    rules: int = 0
    skipped: dict[str, str] | None = None  # rule title -> why it could not run in SQL
    candidates: int = 0
    matches: int = 0


def retro_hunt(
    db_path: str | Path, report: LoadReport, since: str | None = None, until: str | None = None
) -> tuple[list[RetroMatch], RetroSummary]:
    """Run the loaded rules over the embedded store's events (optionally a ``[since, until)`` window)."""
    since_ts = format_ts(parse_ts(since)) if since else None
    until_ts = format_ts(parse_ts(until)) if until else None
    entries = [e for e in report.loaded if isinstance(e.rule, SigmaRule) and e.compiled is not None]
    ruleset = RuleSet(e.compiled for e in entries if e.compiled is not None)
    fields = {name for e in entries if e.compiled is not None for name in e.compiled.fields_used}
    summary = RetroSummary(skipped={})
    assert summary.skipped is not None
    matches: list[RetroMatch] = []
    try:
        conn = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DetectionError(f"cannot open the embedded store {db_path} read-only: {exc}") from exc
    try:
        conn.execute(_view_sql(fields, since_ts, until_ts))
        converter = sqliteBackend()
        for entry in entries:
            compiled = entry.compiled
            assert compiled is not None
            try:
                queries = converter.convert_rule(copy.deepcopy(entry.rule))
            except SigmaError as exc:
                summary.skipped[compiled.title] = str(exc)
                continue
            summary.rules += 1
            for query in queries:
                try:
                    rows: list[Any] = conn.execute(str(query)).fetchall()
                except sqlite3.Error as exc:
                    summary.skipped[compiled.title] = f"SQL error: {exc}"
                    break
                for row in rows:
                    summary.candidates += 1
                    event = Event.from_json(row[1])
                    if any(hit.rule_id == compiled.rule_id for hit in ruleset.match(event)):
                        matches.append(RetroMatch(compiled, event))
    finally:
        conn.close()
    summary.matches = len(matches)
    return matches, summary
