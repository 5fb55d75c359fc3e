"""Sigma rules as Elasticsearch / OpenSearch queries (Lucene, ES|QL, EQL), for searches and retro-hunts.

Conversion is done by pySigma's Elasticsearch backends with our field pipeline
(:func:`detections.sigma.pipelines.citysoc_pipeline`) plus the index pattern of
the event data streams, so a converted query names schema fields only.

Correlations: ES|QL (``stats``) and EQL (``sequence``, temporal-ordered only) can
express some correlation types; their semantics differ from the stream engine
(ES|QL counts in fixed time buckets, the engine in a sliding window that clears
when it fires).  So a retro-hunt never trusts a backend correlation for alerts:
:func:`hunt_candidates` asks the cluster for the events of every base rule and
:mod:`detections.engine` evaluates the correlation on those results, exactly as
in the stream.  The converted correlation queries are offered for analysts
(Kibana/Discover), marked with who evaluates them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sigma.backends.elasticsearch import EqlBackend, ESQLBackend, LuceneBackend
from sigma.collection import SigmaCollection
from sigma.conversion.base import Backend
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import SetStateTransformation
from sigma.rule import SigmaRule

from detections.errors import DetectionError
from detections.sigma.pipelines import citysoc_pipeline
from store.event import Event, format_ts

DEFAULT_INDEX = "citysoc-events-*"


class QueryLanguage(enum.Enum):
    LUCENE = "lucene"
    ESQL = "esql"
    EQL = "eql"


_BACKENDS: dict[QueryLanguage, type[Backend]] = {
    QueryLanguage.LUCENE: LuceneBackend,
    QueryLanguage.ESQL: ESQLBackend,
    QueryLanguage.EQL: EqlBackend,
}


class QueryConversionError(DetectionError):
    """A rule the backend cannot convert; the message names the rule and its file."""


@dataclass(frozen=True)
class ConvertedRule:
    """One rule's query; ``evaluated_by`` says whether the cluster's answer is final or the engine's."""

    rule_id: str
    title: str
    origin: str
    language: QueryLanguage
    queries: tuple[str, ...]
    correlation: bool = False
    evaluated_by: str = "cluster"  # "cluster" or "engine"
    note: str = ""


def search_pipeline(index: str = DEFAULT_INDEX) -> ProcessingPipeline:
    """Our field pipeline plus the index the ES|QL / EQL outputs name."""
    return citysoc_pipeline() + ProcessingPipeline(
        [ProcessingItem(SetStateTransformation("index", index), identifier="citysoc_event_index")]
    )


def _backend(language: QueryLanguage, index: str) -> Backend:
    return _BACKENDS[language](processing_pipeline=search_pipeline(index))


def _standalone(rule: SigmaRule) -> SigmaRule:
    # a base rule of a correlation is not output on its own (generate: false); a copy is
    return SigmaRule.from_dict(rule.to_dict())


def _rule_id(rule: SigmaRule | SigmaCorrelationRule) -> str:
    return str(rule.id or rule.name or rule.title)


def _bases(rule: SigmaCorrelationRule) -> list[SigmaRule]:
    out: list[SigmaRule] = []
    for ref in rule.rules or ():
        target = getattr(ref, "rule", None)
        if isinstance(target, SigmaRule):
            out.append(target)
    return out


def convert_collection(
    collection: SigmaCollection, language: QueryLanguage, origin: str = "<rules>", index: str = DEFAULT_INDEX
) -> list[ConvertedRule]:
    """Every rule and correlation of a collection; a rule that fails raises with its origin."""
    out: list[ConvertedRule] = []
    for rule in collection.rules:
        try:
            if isinstance(rule, SigmaRule):
                out.append(_convert_rule(rule, language, origin, index))
            elif isinstance(rule, SigmaCorrelationRule):
                out.append(_convert_correlation(rule, language, origin, index))
        except SigmaError as exc:
            raise QueryConversionError(f"{origin}: rule {rule.title!r}: {exc}") from exc
    return out


def _convert_rule(rule: SigmaRule, language: QueryLanguage, origin: str, index: str) -> ConvertedRule:
    try:
        queries = _backend(language, index).convert_rule(_standalone(rule))
    except NotImplementedError as exc:
        # a construct this query language lacks (e.g. field-exists in ES|QL): say so, the engine still runs it
        note = f"{language.value} cannot express it ({exc}); hunt it with the engine"
        return ConvertedRule(_rule_id(rule), rule.title, origin, language, (), False, "engine", note)
    return ConvertedRule(_rule_id(rule), rule.title, origin, language, tuple(map(str, queries)))


def _convert_correlation(rule: SigmaCorrelationRule, language: QueryLanguage, origin: str, index: str) -> ConvertedRule:
    bases = _bases(rule)
    base_ids = ", ".join(_rule_id(b) for b in bases)
    backend = _backend(language, index)
    rid = _rule_id(rule)
    if not backend.correlation_methods:
        note = f"{language.value} has no correlations; the engine evaluates base rules {base_ids}"
        return ConvertedRule(rid, rule.title, origin, language, (), True, "engine", note)
    mini = SigmaCollection.from_dicts([b.to_dict() for b in bases] + [rule.to_dict()])
    try:
        queries = tuple(str(q) for q in backend.convert(mini))
    except (SigmaError, NotImplementedError) as exc:
        note = f"{language.value} cannot express it ({exc}); the engine evaluates base rules {base_ids}"
        return ConvertedRule(rid, rule.title, origin, language, (), True, "engine", note)
    note = "for analysts; the backend's window semantics differ, alerts come from the engine"
    return ConvertedRule(rid, rule.title, origin, language, queries, True, "engine", note)


def convert_paths(
    paths: Iterable[str | Path], language: QueryLanguage, index: str = DEFAULT_INDEX
) -> list[ConvertedRule]:
    """Rule files (or directories of ``*.yml``) converted; errors name the file."""
    out: list[ConvertedRule] = []
    for path in _rule_files(paths):
        try:
            collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"))
        except (SigmaError, OSError) as exc:
            raise QueryConversionError(f"{path}: {exc}") from exc
        out.extend(convert_collection(collection, language, str(path), index))
    return out


def _rule_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.yml") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise QueryConversionError(f"{path}: no such rule file or directory")
    return files


# retro-hunts on a cluster ------------------------------------------------------------------------


class QueryableStore(Protocol):
    """A store that runs query-DSL bodies on events (``store.elastic.ElasticStore``)."""

    def query_events(self, query: Mapping[str, Any], limit: int = 10_000) -> list[Event]: ...


def rule_query_dsl(rule: SigmaRule, index: str = DEFAULT_INDEX) -> list[dict[str, Any]]:
    """The query-DSL ``query`` bodies (``query_string`` with the converted Lucene) of one rule."""
    try:
        bodies = _backend(QueryLanguage.LUCENE, index).convert_rule(_standalone(rule), "dsl_lucene")
    except SigmaError as exc:
        raise QueryConversionError(f"rule {rule.title!r}: {exc}") from exc
    return [dict(body["query"]) for body in bodies]


def hunt_candidates(
    store: QueryableStore,
    rules: Sequence[SigmaRule],
    start: datetime | None = None,
    end: datetime | None = None,
    limit_per_rule: int = 10_000,
) -> list[Event]:
    """Events any rule (single or base of a correlation) matches in the cluster, in timestamp order.

    Feed them to a :class:`detections.engine.DetectionEngine` (which re-checks each rule and
    evaluates correlations) to get the alerts of the retro-hunt.
    """
    bounds: dict[str, str] = {}
    if start is not None:
        bounds["gte"] = format_ts(start)
    if end is not None:
        bounds["lt"] = format_ts(end)
    found: dict[str, Event] = {}
    for rule in rules:
        for query in rule_query_dsl(rule):
            body: dict[str, Any] = {"bool": {"filter": [query]}}
            if bounds:
                body["bool"]["filter"].append({"range": {"@timestamp": bounds}})
            for event in store.query_events(body, limit_per_rule):
                found[event.id] = event
    return sorted(found.values(), key=lambda e: (e.timestamp, e.id))
