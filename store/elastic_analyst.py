"""Query DSL bodies of the analyst queries for the Elasticsearch / OpenSearch store.

:class:`store.elastic.ElasticStore` sends these bodies and reads the answers.  Incident
entities are kept unindexed in ``_source`` (free-form JSON), so agency scope, sector
filters, pivots and per-sector counts go through a runtime field (``entity_terms``,
``field=value``) computed from ``_source``; values are script *parameters* and
query values, never script or query syntax.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from store.event import format_ts
from store.filters import ENTITY_FILTER_FIELDS, INCIDENT_SORTS, IncidentFilter
from store.models import IncidentStatus
from store.query import Node, to_elastic

#: ``entity_terms``: every ``field=value`` of the incident's entities (for the fields in ENTITY_FILTER_FIELDS).
ENTITY_TERMS_SCRIPT = """
def e = params._source.entities;
if (e != null) {
  for (def k : params.fields) {
    def values = e.get(k);
    if (values != null) { for (def v : values) { emit(k + '=' + v); } }
  }
}
"""

RUNTIME = {
    "entity_terms": {
        "type": "keyword",
        "script": {"source": ENTITY_TERMS_SCRIPT, "params": {"fields": list(ENTITY_FILTER_FIELDS)}},
    }
}


def _terms(field: str, values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {"terms": {"entity_terms": [f"{field}={v}" for v in values]}}


def incident_query(flt: IncidentFilter) -> dict[str, Any]:
    must: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    if flt.scope is not None:
        must.append(_terms("asset.agency", flt.scope) if flt.scope else {"bool": {"must_not": {"match_all": {}}}})
    if flt.statuses:
        must.append({"terms": {"status": [s.value for s in flt.statuses]}})
    if flt.severities:
        must.append({"terms": {"severity": [int(s) for s in flt.severities]}})
    if flt.sectors:
        must.append(_terms("asset.sector", flt.sectors))
    if flt.agencies:
        must.append(_terms("asset.agency", flt.agencies))
    if flt.entity is not None:
        must.append(_terms(flt.entity[0], [flt.entity[1]]))
    if flt.unassigned:
        must_not.append({"exists": {"field": "assignee"}})
    elif flt.assignee:
        must.append({"term": {"assignee": flt.assignee}})
    if flt.text:
        must.append({"bool": {"should": [{"term": {"id": flt.text}}, {"match_phrase": {"title": flt.text}},
                                         _terms_any(flt.text)], "minimum_should_match": 1}})  # fmt: skip
    if flt.created_after is not None:
        must.append({"range": {"created": {"gte": format_ts(flt.created_after)}}})
    if flt.sla is not None:
        must_not.append({"term": {"status": IncidentStatus.CLOSED.value}})
        bound = "lt" if flt.sla == "breached" else "gte"
        must.append({"bool": {"should": [
            {"bool": {"filter": [{"term": {"severity": int(sev)}},
                                 {"range": {"created": {bound: format_ts(deadline)}}}]}}
            for sev, deadline in sorted(flt.deadlines().items())
        ], "minimum_should_match": 1}})  # fmt: skip
    return {"bool": {"filter": must, "must_not": must_not}}


def _terms_any(text: str) -> dict[str, Any]:
    return {"terms": {"entity_terms": [f"{field}={text}" for field in ENTITY_FILTER_FIELDS]}}


def incident_search(flt: IncidentFilter, limit: int, offset: int) -> dict[str, Any]:
    order = "desc" if flt.descending else "asc"
    return {
        "query": incident_query(flt),
        "runtime_mappings": RUNTIME,
        "sort": [{INCIDENT_SORTS[flt.sort]: order}, {"id": "asc"}],
        "from": offset,
        "size": limit,
        "track_total_hits": True,
    }


def event_search(
    query: Node | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
    interval: timedelta | None,
) -> dict[str, Any]:
    clauses = [to_elastic(query)]
    bounds: dict[str, str] = {}
    if start is not None:
        bounds["gte"] = format_ts(start)
    if end is not None:
        bounds["lt"] = format_ts(end)
    if bounds:
        clauses.append({"range": {"@timestamp": bounds}})
    body: dict[str, Any] = {
        "query": {"bool": {"filter": clauses}},
        "sort": [{"@timestamp": "desc"}, {"event.id": "asc"}],
        "from": offset,
        "size": limit,
        "track_total_hits": interval is not None,
    }
    if interval is not None and start is not None and end is not None:
        body["aggs"] = {
            "histogram": {
                "date_histogram": {
                    "field": "@timestamp",
                    "fixed_interval": f"{int(interval.total_seconds())}s",
                    "min_doc_count": 0,
                    "extended_bounds": {"min": format_ts(start), "max": format_ts(end - timedelta(microseconds=1))},
                }
            }
        }
    return body


def stats_search(start: datetime, end: datetime, interval: timedelta, scope: tuple[str, ...] | None) -> dict[str, Any]:
    scoped = incident_query(IncidentFilter(scope=scope))
    window = {"range": {"created": {"gte": format_ts(start), "lt": format_ts(end)}}}
    return {
        "size": 0,
        "query": {"bool": {"filter": [scoped, window]}},
        "runtime_mappings": {
            **RUNTIME,
            "sector": {
                "type": "keyword",
                "script": {
                    "source": "def e = params._source.entities; def v = e == null ? null : e.get('asset.sector');"
                    " if (v == null || v.isEmpty()) { emit('(no sector)'); } else { for (def s : v) { emit(s); } }"
                },
            },
        },
        "aggs": {
            "trend": {
                "date_histogram": {
                    "field": "created",
                    "fixed_interval": f"{int(interval.total_seconds())}s",
                    "min_doc_count": 0,
                    "extended_bounds": {"min": format_ts(start), "max": format_ts(end - timedelta(microseconds=1))},
                },
                "aggs": {"mttd": {"avg": {"field": "mttd_seconds"}}},
            },
            "sector": {"terms": {"field": "sector", "size": 100}},
            "status": {"terms": {"field": "status", "size": 20}},
            "severity": {"terms": {"field": "severity", "size": 10}},
        },
    }


def closings_search(start: datetime, end: datetime, after: list[Any] | None) -> dict[str, Any]:
    """Status entries in the window, page by page (their value is checked by the caller: data is not indexed)."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [{"term": {"kind": "status"}},
                                      {"range": {"at": {"gte": format_ts(start), "lt": format_ts(end)}}}]}},
        "sort": [{"at": "asc"}, {"incident_id": "asc"}, {"seq": "asc"}],
        "size": 1000,
    }  # fmt: skip
    if after is not None:
        body["search_after"] = after
    return body


def sources_search(since: datetime) -> dict[str, Any]:
    return {
        "size": 0,
        "query": {"range": {"@timestamp": {"gte": format_ts(since)}}},
        "aggs": {
            "datasets": {
                "terms": {"field": "event.dataset", "size": 500, "missing": "(none)"},
                "aggs": {"last": {"max": {"field": "@timestamp"}}},
            }
        },
    }
