"""Elasticsearch / OpenSearch store: the scale-out backend behind :class:`store.base.Store`.

URLs: ``elasticsearch://[user:password@]host:9200[,host2:9200][?prefix=citysoc&refresh=wait_for]``
(``elasticsearch+https://`` for TLS, ``ca_certs=/path`` to pin the CA), and the same with
``opensearch://`` / ``opensearch+https://``.  ``CITYSOC_ELASTICSEARCH_API_KEY`` is sent as an
API key when set.  The official ``elasticsearch`` client speaks to Elasticsearch (its major
version must match the cluster's: 9.x here, ``elasticsearch>=8,<9`` for an 8.x cluster),
``opensearch-py`` to OpenSearch.  Both are used only through ``perform_request`` on the REST
API, which the two families share for everything used here.

Layout (see :mod:`store.es_mapping`): events in data streams per dataset and security level
(ILM/ISM retention), every other record kind in its own index.  Writes that must not race
use the cluster's primitives: ``create`` (fails on an existing id) for events, alerts,
timeline entries, audit entries and step claims, and ``if_seq_no``/``if_primary_term``
(optimistic concurrency) for incident projections and the audit head.  Query text and
filter values go into JSON query bodies as values (``simple_query_string``, ``term``),
never into query syntax.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from store import elastic_analyst
from store.base import Store
from store.errors import AuditChainBroken, Conflict, NotFound, StoreError
from store.es_bulk import BackPressure, BulkIngester, BulkOp
from store.es_mapping import (
    RECORD_PROPERTIES,
    Flavor,
    RetentionConfig,
    events_component_template,
    events_index_templates,
    ilm_policies,
    ism_policies,
    record_index_body,
    stream_name,
)
from store.event import Event, format_ts, parse_ts, stable_id, without_surrogates
from store.filters import (
    Bucket,
    EventPage,
    IncidentFilter,
    IncidentPage,
    IncidentStats,
    SourceActivity,
    TrendPoint,
    choose_interval,
)
from store.models import (
    Alert,
    ApiToken,
    AuditEntry,
    DeadLetter,
    Incident,
    IncidentStatus,
    PlaybookRun,
    RunStatus,
    Severity,
    StepRecord,
    StepStatus,
    TimelineEntry,
    User,
)
from store.query import Node
from store.schema import FIELDS, FieldType

GENESIS = "0" * 64
#: how often a read-modify-write retries after losing an optimistic-concurrency race
OCC_RETRIES = 50


class ClusterError(StoreError):
    """A request the cluster refused; the message carries method, path, status and reason."""

    def __init__(self, method: str, path: str, status: int, info: Any) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {str(info)[:500]}")
        self.status = status


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _audit_hash(seq: int, at: str, actor: str, action: str, obj: str, details: str, prev: str) -> str:
    # the same formula as the embedded store, so a migrated chain verifies on either backend
    payload = _dumps([seq, at, actor, action, obj, json.loads(details), prev])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class _Http:
    """One REST call surface over either client; errors become :class:`ClusterError`."""

    def __init__(self, flavor: Flavor, hosts: list[str], auth: tuple[str, str] | None, ca_certs: str | None) -> None:
        self.flavor = flavor
        api_key = os.environ.get("CITYSOC_ELASTICSEARCH_API_KEY")
        try:
            if flavor is Flavor.ELASTICSEARCH:
                from elasticsearch import ApiError, Elasticsearch
                from elasticsearch import TransportError as EsTransportError

                self._errors: tuple[type[BaseException], ...] = (ApiError,)
                self._down: tuple[type[BaseException], ...] = (EsTransportError,)
                options: dict[str, Any] = {"basic_auth": auth, "api_key": api_key, "request_timeout": 30}
                if ca_certs:
                    options["ca_certs"] = ca_certs
                self._client: Any = Elasticsearch(hosts, **options)
            else:
                from opensearchpy import OpenSearch
                from opensearchpy import TransportError as OsTransportError
                from opensearchpy.exceptions import ConnectionError as OsConnectionError

                self._errors = (OsTransportError,)
                self._down = (OsConnectionError,)
                self._client = OpenSearch(
                    hosts, http_auth=auth, ca_certs=ca_certs, verify_certs=True, use_ssl=hosts[0].startswith("https")
                )
        except ImportError as exc:
            raise StoreError(f"the {flavor.value} client is not installed: pip install {exc.name}") from exc

    def request(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None, ndjson: bool = False
    ) -> dict[str, Any]:
        kind = "application/x-ndjson" if ndjson else "application/json"
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = kind
        try:
            if self.flavor is Flavor.ELASTICSEARCH:
                response = self._client.perform_request(method, path, params=params, headers=headers, body=body)
                return dict(response.body) if response.body else {}
            result = self._client.transport.perform_request(method, path, params=params, body=body, headers=headers)
            return dict(result) if isinstance(result, Mapping) else {}
        except self._down as exc:
            status = getattr(exc, "status_code", None)
            if isinstance(exc, self._errors) and isinstance(status, int):
                raise ClusterError(method, path, status, getattr(exc, "info", exc)) from exc
            raise StoreError(f"{self.flavor.value} cluster unreachable ({method} {path}): {exc}") from exc
        except self._errors as exc:
            status = getattr(exc, "status_code", None) or getattr(getattr(exc, "meta", None), "status", 0)
            raise ClusterError(method, path, int(status or 0), getattr(exc, "info", exc)) from exc

    def close(self) -> None:
        self._client.close()


def parse_url(scheme: str, rest: str) -> dict[str, Any]:
    """Connection settings from ``scheme://rest`` (pure; tested without a cluster)."""
    flavor = Flavor.OPENSEARCH if scheme.startswith("opensearch") else Flavor.ELASTICSEARCH
    tls = scheme.endswith("+https")
    parts = urlsplit(f"//{rest}")
    netloc = parts.netloc
    auth: tuple[str, str] | None = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        auth = (unquote(user), unquote(password))
    if not netloc:
        raise StoreError(f"{scheme} store URL has no host (e.g. {scheme}://127.0.0.1:9200)")
    hosts = [f"{'https' if tls else 'http'}://{h}" for h in netloc.split(",") if h]
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"prefix", "refresh", "ca_certs"}
    if unknown:
        raise StoreError(f"{scheme} store URL: unknown option(s) {', '.join(sorted(unknown))}")
    prefix = query.get("prefix", "citysoc")
    if not prefix or prefix != prefix.lower() or not prefix.replace("-", "").replace("_", "").isalnum():
        raise StoreError(f"{scheme} store URL: prefix {prefix!r} must be lowercase letters, digits, '-' or '_'")
    refresh = query.get("refresh", "wait_for")
    if refresh not in ("wait_for", "true", "false"):
        raise StoreError(f"{scheme} store URL: refresh must be wait_for, true or false, not {refresh!r}")
    return {
        "flavor": flavor,
        "hosts": hosts,
        "auth": auth,
        "prefix": prefix,
        "refresh": refresh,
        "ca_certs": query.get("ca_certs"),
    }


#: filterable event fields: keyword-like fields use term queries on their exact value
_TERMABLE = (FieldType.KEYWORD, FieldType.IP, FieldType.LONG, FieldType.DOUBLE, FieldType.BOOLEAN, FieldType.DATE)


def storable(event: Event) -> Event:
    """``event``, or (when its text holds a lone surrogate, which UTF-8 cannot carry) the same event with U+FFFD.

    A JSON record can carry ``"\\udcff"``; the bulk body is UTF-8, so such an event would fail
    its whole batch.  The embedded store does the same (``SQLiteStore.put_events``).
    """
    text = event.to_json()
    if text.isascii():
        return event
    try:
        text.encode()
    except UnicodeEncodeError:
        return without_surrogates(event)
    return event


class ElasticStore(Store):
    """Events, alerts, incidents, runs, audit, dead letters and users in an Elasticsearch or OpenSearch cluster."""

    name: ClassVar[str] = "elasticsearch"

    def __init__(
        self,
        hosts: list[str],
        flavor: Flavor = Flavor.ELASTICSEARCH,
        auth: tuple[str, str] | None = None,
        prefix: str = "citysoc",
        refresh: str = "wait_for",
        ca_certs: str | None = None,
        retention: RetentionConfig | None = None,
        bulk: BulkIngester | None = None,
    ) -> None:
        self.flavor = flavor
        self.prefix = prefix
        self.refresh = refresh
        self.retention = retention or RetentionConfig()
        self.http = _Http(flavor, hosts, auth, ca_certs)
        self.bulk = bulk or BulkIngester(self._send_bulk)
        self.install()

    @classmethod
    def from_url(cls, scheme: str, rest: str) -> ElasticStore:
        return cls(**parse_url(scheme, rest))

    # setup -----------------------------------------------------------------------------------
    def _index(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    @property
    def _events(self) -> str:
        return f"{self.prefix}-events-*"

    def install(self) -> None:
        """Put lifecycle policies, templates and record indices (idempotent)."""
        req = self.http.request
        if self.flavor is Flavor.ELASTICSEARCH:
            for name, body in ilm_policies(self.prefix, self.retention).items():
                req("PUT", f"/_ilm/policy/{name}", body)
        else:
            for name, body in ism_policies(self.prefix, self.retention).items():
                try:
                    req("PUT", f"/_plugins/_ism/policies/{name}", body)
                except ClusterError as exc:
                    if exc.status != 409:  # exists: ISM needs seq_no to update; keep the installed one
                        raise
        req("PUT", f"/_component_template/{self.prefix}-events-mappings", events_component_template(self.flavor))
        for name, body in events_index_templates(self.prefix, self.retention, self.flavor).items():
            req("PUT", f"/_index_template/{name}", body)
        for suffix in RECORD_PROPERTIES:
            try:
                req("PUT", f"/{self._index(suffix)}", record_index_body(suffix))
            except ClusterError as exc:
                if exc.status != 400 or "already_exists" not in str(exc):
                    raise
                # an index made by an older version: add fields introduced since (adding fields is allowed)
                req("PUT", f"/{self._index(suffix)}/_mapping", {"properties": RECORD_PROPERTIES[suffix]})

    def close(self) -> None:
        self.http.close()

    # low-level helpers -------------------------------------------------------------------------
    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"refresh": self.refresh, **{k: v for k, v in extra.items() if v is not None}}

    def _create(self, suffix: str, doc_id: str, body: Mapping[str, Any]) -> bool:
        """Create a record; False when the id exists."""
        try:
            self.http.request("PUT", f"/{self._index(suffix)}/_create/{_q(doc_id)}", dict(body), self._params())
        except ClusterError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _put(self, suffix: str, doc_id: str, body: Mapping[str, Any], **occ: Any) -> None:
        self.http.request("PUT", f"/{self._index(suffix)}/_doc/{_q(doc_id)}", dict(body), self._params(**occ))

    def _get(self, suffix: str, doc_id: str) -> dict[str, Any] | None:
        try:
            return self.http.request("GET", f"/{self._index(suffix)}/_doc/{_q(doc_id)}")
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise

    def _search(self, index: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        result = self.http.request("POST", f"/{index}/_search", dict(body), {"ignore_unavailable": "true"})
        return list(result.get("hits", {}).get("hits", []))

    def _count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        body = {"query": dict(query)} if query else None
        try:
            return int(self.http.request("POST", f"/{index}/_count", body).get("count", 0))
        except ClusterError as exc:
            if exc.status == 404:
                return 0
            raise

    def _send_bulk(self, lines: list[dict[str, Any]]) -> Mapping[str, Any]:
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        return self.http.request("POST", "/_bulk", body, self._params(), ndjson=True)

    # events ------------------------------------------------------------------------------------
    def put_events(self, events: Sequence[Event]) -> list[Event]:
        unique = [storable(e) for e in {e.id: e for e in events}.values()]
        if not unique:
            return []
        # create-by-id only dedupes inside one backing index; after a rollover an id may live in an
        # older one, so ask the whole stream first
        known = {e.id for e in self.get_events([e.id for e in unique])}
        ops = []
        for event in unique:
            if event.id in known:
                continue
            level = event.get("asset.security_level")
            index = stream_name(self.prefix, event.get("event.dataset"), level if isinstance(level, int) else None)
            doc = event.to_document()
            doc.setdefault("event", {})["id"] = event.id
            ops.append(BulkOp(index, event.id, doc))
        result = self.bulk.ingest(ops)
        if result.failed:
            first = result.failed[0]
            raise StoreError(
                f"{len(result.failed)} event(s) rejected by the cluster; first {first.doc_id} in {first.index}: "
                f"HTTP {first.status} {first.reason}"
            )
        created = set(result.created)
        return [e for e in unique if e.id in created]

    @staticmethod
    def _event(hit: Mapping[str, Any]) -> Event:
        return Event.from_document(hit["_source"])

    def get_event(self, event_id: str) -> Event:
        found = self.get_events([event_id])
        if not found:
            raise NotFound("event", event_id)
        return found[0]

    def get_events(self, event_ids: Sequence[str]) -> list[Event]:
        ids = list(dict.fromkeys(event_ids))
        out: list[Event] = []
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            hits = self._search(self._events, {"query": {"ids": {"values": chunk}}, "size": len(chunk)})
            out.extend(self._event(h) for h in hits)
        unique = {e.id: e for e in out}
        return sorted(unique.values(), key=lambda e: (e.timestamp, e.id))

    def _event_query(
        self,
        text: str | None,
        filters: Mapping[str, str] | None,
        start: datetime | None,
        end: datetime | None,
    ) -> dict[str, Any]:
        must: list[dict[str, Any]] = []
        if text:
            # every term must match, and the text is never query syntax (flags NONE disables operators)
            must.append(
                {"simple_query_string": {"query": text, "default_operator": "and", "flags": "NONE", "lenient": True}}
            )
        for name, value in (filters or {}).items():
            if name == "event.id":
                must.append({"ids": {"values": [value]}})
                continue
            spec = FIELDS.get(name)
            if spec is None:
                raise StoreError(f"unknown field {name!r} in search filter")
            kind = "term" if spec.type in _TERMABLE else "match_phrase"
            must.append({kind: {name: value}})
        bounds: dict[str, str] = {}
        if start is not None:
            bounds["gte"] = format_ts(start)
        if end is not None:
            bounds["lt"] = format_ts(end)
        if bounds:
            must.append({"range": {"@timestamp": bounds}})
        return {"bool": {"filter": must}} if must else {"match_all": {}}

    def search_events(
        self,
        text: str | None = None,
        filters: Mapping[str, str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Event]:
        body = {
            "query": self._event_query(text, filters, start, end),
            "sort": [{"@timestamp": "desc"}, {"event.id": "asc"}],
            "from": offset,
            "size": limit,
        }
        return [self._event(h) for h in self._search(self._events, body)]

    def query_events(self, query: Mapping[str, Any], limit: int = 10_000) -> list[Event]:
        """Events matching a query DSL body (used by retro-hunts with converted Sigma rules)."""
        body = {"query": dict(query), "sort": [{"@timestamp": "asc"}, {"event.id": "asc"}], "size": limit}
        return [self._event(h) for h in self._search(self._events, body)]

    def iter_events(self, start: datetime | None = None, end: datetime | None = None) -> Iterator[Event]:
        query = self._event_query(None, None, start, end)
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": query,
                "sort": [{"@timestamp": "asc"}, {"event.id": "asc"}],
                "size": 1000,
            }
            if after is not None:
                body["search_after"] = after
            hits = self._search(self._events, body)
            if not hits:
                return
            for hit in hits:
                yield self._event(hit)
            after = hits[-1]["sort"]

    def count_events(self) -> int:
        return self._count(self._events)

    def delete_events(self, event_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(event_ids))
        deleted = 0
        for i in range(0, len(ids), 1000):  # data streams take deletes by query, not by _id
            body = {"query": {"terms": {"event.id": ids[i : i + 1000]}}}
            resp = self.http.request("POST", f"/{self._events}/_delete_by_query", body,
                                     {"refresh": "true", "conflicts": "proceed"})
            deleted += int(resp.get("deleted", 0))
        return deleted

    # dead letters --------------------------------------------------------------------------------
    def _next(self, counter: str, at_least: int = 0) -> int:
        """A cluster-wide increasing number (dead-letter ids), by optimistic concurrency on a counter doc."""
        for _ in range(OCC_RETRIES):
            doc = self._get("counters", counter)
            if doc is None:
                if self._create("counters", counter, {"value": max(1, at_least)}):
                    return max(1, at_least)
                continue
            value = max(int(doc["_source"]["value"]) + 1, at_least)
            try:
                self._put(
                    "counters",
                    counter,
                    {"value": value},
                    if_seq_no=doc["_seq_no"],
                    if_primary_term=doc["_primary_term"],
                )
            except ClusterError as exc:
                if exc.status == 409:
                    continue
                raise
            return value
        raise Conflict(f"counter {counter!r}: too many concurrent writers, gave up after {OCC_RETRIES} tries")

    def add_dead_letter(self, source: str, offset: str, reason: str, raw: str) -> DeadLetter:
        # the document id is derived from source, offset and content: a resent record is the same dead letter
        doc_id = "k:" + stable_id("dead-letter", source, offset, raw)
        for _ in range(2):  # created, or found (also when a concurrent writer created it first)
            found = self._get("dead-letters", doc_id)
            if found is not None:
                s = found["_source"]
                return DeadLetter(s["id"], parse_ts(s["at"]), s["source"], s["offset"], s["reason"], s["raw"])
            at = _now()
            dl_id = self._next("dead-letters")
            body = {"id": dl_id, "at": format_ts(at), "source": source, "offset": offset, "reason": reason, "raw": raw}
            if self._create("dead-letters", doc_id, body):
                return DeadLetter(dl_id, at, source, offset, reason, raw)
        raise Conflict(f"dead letter {doc_id!r}: created and then not found")

    def list_dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        hits = self._search(self._index("dead-letters"), {"sort": [{"id": "desc"}], "from": offset, "size": limit})
        return [
            DeadLetter(s["id"], parse_ts(s["at"]), s["source"], s["offset"], s["reason"], s["raw"])
            for s in (h["_source"] for h in hits)
        ]

    def count_dead_letters(self) -> int:
        return self._count(self._index("dead-letters"))

    # alerts ----------------------------------------------------------------------------------------
    @staticmethod
    def _alert_doc(alert: Alert) -> dict[str, Any]:
        return {
            "id": alert.id,
            "rule_id": alert.rule_id,
            "rule_title": alert.rule_title,
            "severity": int(alert.severity),
            "created": format_ts(alert.created),
            "event_time": format_ts(alert.event_time),
            "event_ids": list(alert.event_ids),
            "entities": dict(alert.entities),
            "tags": list(alert.tags),
            "source": alert.source,
            "description": alert.description,
            "incident_id": alert.incident_id,
            "group_by": list(alert.group_by),
        }

    @staticmethod
    def _alert(s: Mapping[str, Any]) -> Alert:
        return Alert(
            id=s["id"],
            rule_id=s["rule_id"],
            rule_title=s["rule_title"],
            severity=Severity(s["severity"]),
            created=parse_ts(s["created"]),
            event_time=parse_ts(s["event_time"]),
            event_ids=tuple(s["event_ids"]),
            entities=dict(s["entities"]),
            tags=tuple(s["tags"]),
            source=s["source"],
            description=s["description"],
            incident_id=s.get("incident_id"),
            group_by=tuple(s.get("group_by", ())),  # absent in alerts stored by older versions
        )

    def add_alert(self, alert: Alert) -> bool:
        return self._create("alerts", alert.id, self._alert_doc(alert))

    def get_alert(self, alert_id: str) -> Alert:
        doc = self._get("alerts", alert_id)
        if doc is None:
            raise NotFound("alert", alert_id)
        return self._alert(doc["_source"])

    def list_alerts(self, incident_id: str | None = None, limit: int = 1000) -> list[Alert]:
        query = {"term": {"incident_id": incident_id}} if incident_id is not None else {"match_all": {}}
        body = {"query": query, "sort": [{"event_time": "desc"}, {"id": "asc"}], "size": limit}
        return [self._alert(h["_source"]) for h in self._search(self._index("alerts"), body)]

    def count_alerts(self) -> int:
        return self._count(self._index("alerts"))

    def _composite(self, index: str, body: Mapping[str, Any], name: str) -> Iterator[dict[str, Any]]:
        """Every bucket of the composite aggregation ``name`` in ``body``, page by page."""
        request = json.loads(json.dumps(body))
        while True:
            result = self.http.request("POST", f"/{index}/_search", request, {"ignore_unavailable": "true"})
            agg = result.get("aggregations", {}).get(name, {})
            buckets = agg.get("buckets", [])
            yield from buckets
            after = agg.get("after_key")
            if not buckets or after is None:
                return
            request["aggs"][name]["composite"]["after"] = after

    def count_alerts_by_rule(self, since: datetime | None = None) -> dict[str, dict[str | None, int]]:
        # alerts and incidents are separate indices (no join): first the verdict of every judged
        # incident, then the alerts per (rule, incident) among those and per rule overall
        verdicts: dict[str, str] = {}
        judged = {
            "size": 0,
            "query": {"exists": {"field": "verdict"}},
            "aggs": {"v": {"composite": {"size": 1000, "sources": [
                {"id": {"terms": {"field": "id"}}}, {"verdict": {"terms": {"field": "verdict"}}}]}}},
        }
        for bucket in self._composite(self._index("incidents"), judged, "v"):
            verdicts[bucket["key"]["id"]] = bucket["key"]["verdict"]
        window: dict[str, Any] = {"range": {"created": {"gte": format_ts(since)}}} if since else {"match_all": {}}
        totals = {
            "size": 0,
            "query": window,
            "aggs": {"r": {"composite": {"size": 1000, "sources": [{"rule": {"terms": {"field": "rule_id"}}}]}}},
        }
        out: dict[str, dict[str | None, int]] = {}
        for bucket in self._composite(self._index("alerts"), totals, "r"):
            out[bucket["key"]["rule"]] = {None: int(bucket["doc_count"])}
        ids = sorted(verdicts)
        for start in range(0, len(ids), 10_000):  # below the default terms-query limit of 65,536
            by_incident = {
                "size": 0,
                "query": {"bool": {"filter": [window, {"terms": {"incident_id": ids[start : start + 10_000]}}]}},
                "aggs": {"r": {"composite": {"size": 1000, "sources": [
                    {"rule": {"terms": {"field": "rule_id"}}}, {"incident": {"terms": {"field": "incident_id"}}}]}}},
            }
            for bucket in self._composite(self._index("alerts"), by_incident, "r"):
                rule, count = bucket["key"]["rule"], int(bucket["doc_count"])
                verdict = verdicts[bucket["key"]["incident"]]
                counts = out.setdefault(rule, {None: 0})
                counts[None] = counts.get(None, 0) - count
                counts[verdict] = counts.get(verdict, 0) + count
        return {rule: {v: n for v, n in counts.items() if n > 0} for rule, counts in out.items()}

    # incidents -------------------------------------------------------------------------------------
    @staticmethod
    def _incident_doc(incident: Incident, timeline_seq: int) -> dict[str, Any]:
        return {
            "id": incident.id,
            "title": incident.title,
            "severity": int(incident.severity),
            "status": incident.status.value,
            "created": format_ts(incident.created),
            "updated": format_ts(incident.updated),
            "first_event_time": format_ts(incident.first_event_time),
            "last_event_time": format_ts(incident.last_event_time),
            "group_key": incident.group_key,
            "entities": {k: list(v) for k, v in incident.entities.items()},
            "tags": list(incident.tags),
            "alert_count": incident.alert_count,
            "mttd_seconds": incident.mttd_seconds,
            "assignee": incident.assignee,
            "verdict": incident.verdict,
            "timeline_seq": timeline_seq,
        }

    @staticmethod
    def _incident(s: Mapping[str, Any]) -> Incident:
        return Incident(
            id=s["id"],
            title=s["title"],
            severity=Severity(s["severity"]),
            status=IncidentStatus(s["status"]),
            created=parse_ts(s["created"]),
            updated=parse_ts(s["updated"]),
            first_event_time=parse_ts(s["first_event_time"]),
            last_event_time=parse_ts(s["last_event_time"]),
            group_key=s["group_key"],
            entities={k: tuple(v) for k, v in s["entities"].items()},
            tags=tuple(s["tags"]),
            alert_count=s["alert_count"],
            mttd_seconds=s.get("mttd_seconds"),
            assignee=s.get("assignee"),
            verdict=s.get("verdict"),
        )

    def _update_incident(self, incident_id: str, change: Any) -> tuple[Incident, Any]:
        """Read-modify-write of the projection under optimistic concurrency.

        ``change(source) -> (new source or None, result)``; None leaves the document as it is.
        """
        for _ in range(OCC_RETRIES):
            doc = self._get("incidents", incident_id)
            if doc is None:
                raise NotFound("incident", incident_id)
            source = dict(doc["_source"])
            new, result = change(source)
            if new is None:
                return self._incident(source), result
            try:
                self._put("incidents", incident_id, new, if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"])
            except ClusterError as exc:
                if exc.status == 409:
                    continue  # another writer won: re-read and re-apply
                raise
            return self._incident(new), result
        raise Conflict(f"incident {incident_id!r}: too many concurrent writers, gave up after {OCC_RETRIES} tries")

    def _append(
        self, incident_id: str, kind: str, actor: str, data: Mapping[str, Any], project: Any = None
    ) -> TimelineEntry:
        at = _now()

        def change(source: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
            seq = int(source.get("timeline_seq", 0)) + 1
            new = dict(source, timeline_seq=seq)
            if project is not None:
                new = project(new)
            return new, seq

        # the seq is claimed together with the projection change in one conditional write
        _, seq = self._update_incident(incident_id, change)
        body = {"incident_id": incident_id, "seq": seq, "at": format_ts(at), "kind": kind, "actor": actor,
                "data": dict(data)}  # fmt: skip
        self._put("timeline", f"{incident_id}:{seq}", body)
        return TimelineEntry(incident_id, seq, parse_ts(format_ts(at)), kind, actor, dict(data))

    def create_incident(self, incident: Incident, actor: str) -> Incident:
        if not self._create("incidents", incident.id, self._incident_doc(incident, 0)):
            raise Conflict(f"incident {incident.id!r} exists already")
        self._append(
            incident.id,
            "created",
            actor,
            {"title": incident.title, "severity": incident.severity.label, "mttd_seconds": incident.mttd_seconds},
        )
        return self.get_incident(incident.id)

    def get_incident(self, incident_id: str) -> Incident:
        doc = self._get("incidents", incident_id)
        if doc is None:
            raise NotFound("incident", incident_id)
        return self._incident(doc["_source"])

    def list_incidents(self, status: IncidentStatus | None = None, limit: int = 100, offset: int = 0) -> list[Incident]:
        query = {"term": {"status": status.value}} if status is not None else {"match_all": {}}
        body = {"query": query, "sort": [{"created": "desc"}, {"id": "asc"}], "from": offset, "size": limit}
        return [self._incident(h["_source"]) for h in self._search(self._index("incidents"), body)]

    def count_incidents(self) -> int:
        return self._count(self._index("incidents"))

    def find_open_incident(self, group_key: str, since: datetime) -> Incident | None:
        body = {
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"group_key": group_key}},
                        {"range": {"last_event_time": {"gte": format_ts(since)}}},
                    ],
                    "must_not": [{"term": {"status": IncidentStatus.CLOSED.value}}],
                }
            },
            "sort": [{"last_event_time": "desc"}],
            "size": 1,
        }
        hits = self._search(self._index("incidents"), body)
        return self._incident(hits[0]["_source"]) if hits else None

    def attach_alert(self, incident_id: str, alert: Alert, actor: str) -> Incident:
        if self._get("incidents", incident_id) is None:
            raise NotFound("incident", incident_id)
        # claim the alert first (conditional on it being unattached), so a redelivery does nothing
        for _ in range(OCC_RETRIES):
            doc = self._get("alerts", alert.id)
            if doc is None:
                raise NotFound("alert", alert.id)
            if doc["_source"].get("incident_id") is not None:
                return self.get_incident(incident_id)
            try:
                self._put(
                    "alerts",
                    alert.id,
                    dict(doc["_source"], incident_id=incident_id),
                    if_seq_no=doc["_seq_no"],
                    if_primary_term=doc["_primary_term"],
                )
                break
            except ClusterError as exc:
                if exc.status != 409:
                    raise
        else:
            raise Conflict(f"alert {alert.id!r}: too many concurrent writers")

        def project(source: dict[str, Any]) -> dict[str, Any]:
            entities = {k: list(v) for k, v in source["entities"].items()}
            for key, value in alert.entities.items():
                bucket = entities.setdefault(key, [])
                if value not in bucket:
                    bucket.append(value)
            first = min(parse_ts(source["first_event_time"]), alert.event_time)
            last = max(parse_ts(source["last_event_time"]), alert.event_time)
            return dict(
                source,
                severity=max(int(source["severity"]), int(alert.severity)),
                first_event_time=format_ts(first),
                last_event_time=format_ts(last),
                entities=entities,
                tags=list(dict.fromkeys([*source["tags"], *alert.tags])),
                alert_count=int(source["alert_count"]) + 1,
            )

        self._append(
            incident_id,
            "alert",
            actor,
            {
                "alert_id": alert.id,
                "rule_id": alert.rule_id,
                "rule_title": alert.rule_title,
                "severity": alert.severity.label,
                "event_time": format_ts(alert.event_time),
            },
            project,
        )
        return self.get_incident(incident_id)

    _PROJECTED: ClassVar[dict[str, str]] = {"status": "status", "assign": "assignee", "verdict": "verdict"}

    def append_timeline(self, incident_id: str, kind: str, actor: str, data: Mapping[str, Any]) -> TimelineEntry:
        column = self._PROJECTED.get(kind)
        project = None
        if column is not None:
            value = data.get("value")
            if column == "status":
                value = IncidentStatus(str(value)).value

            def project(source: dict[str, Any]) -> dict[str, Any]:
                return dict(source, **{column: value})

        return self._append(incident_id, kind, actor, data, project)

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        body = {"query": {"term": {"incident_id": incident_id}}, "sort": [{"seq": "asc"}], "size": 10_000}
        return [
            TimelineEntry(s["incident_id"], s["seq"], parse_ts(s["at"]), s["kind"], s["actor"], dict(s["data"]))
            for s in (h["_source"] for h in self._search(self._index("timeline"), body))
        ]

    # runs --------------------------------------------------------------------------------------------
    def create_run(self, run: PlaybookRun) -> PlaybookRun:
        body = {
            "id": run.id,
            "playbook": run.playbook,
            "playbook_version": run.playbook_version,
            "incident_id": run.incident_id,
            "status": run.status.value,
            "created": format_ts(run.created),
            "updated": format_ts(run.updated),
            "drill": run.drill,
            "error": run.error,
        }
        if not self._create("runs", run.id, body):
            raise Conflict(f"playbook run {run.id!r} exists already")
        for pos, step in enumerate(run.steps):
            self._put_step(step, pos)
        return self.get_run(run.id)

    def _put_step(self, step: StepRecord, pos: int | None = None) -> None:
        doc_id = f"{step.run_id}:{step.ref}"
        if pos is None:
            existing = self._get("steps", doc_id)
            if existing is not None:
                pos = int(existing["_source"]["pos"])
            else:
                pos = self._count(self._index("steps"), {"term": {"run_id": step.run_id}})
        body = {
            "run_id": step.run_id,
            "ref": step.ref,
            "action": step.action,
            "status": step.status.value,
            "attempt": step.attempt,
            "started": format_ts(step.started) if step.started else None,
            "finished": format_ts(step.finished) if step.finished else None,
            "inputs": dict(step.inputs),
            "output": {"value": step.output} if step.output is not None else None,
            "error": step.error,
            "pos": pos,
        }
        self._put("steps", doc_id, body)

    def get_run(self, run_id: str) -> PlaybookRun:
        doc = self._get("runs", run_id)
        if doc is None:
            raise NotFound("playbook run", run_id)
        r = doc["_source"]
        hits = self._search(
            self._index("steps"), {"query": {"term": {"run_id": run_id}}, "sort": [{"pos": "asc"}], "size": 10_000}
        )
        steps = tuple(
            StepRecord(
                run_id=s["run_id"],
                ref=s["ref"],
                action=s["action"],
                status=StepStatus(s["status"]),
                attempt=s["attempt"],
                started=parse_ts(s["started"]) if s.get("started") else None,
                finished=parse_ts(s["finished"]) if s.get("finished") else None,
                inputs=dict(s["inputs"]),
                output=s["output"]["value"] if s.get("output") else None,
                error=s.get("error"),
            )
            for s in (h["_source"] for h in hits)
        )
        return PlaybookRun(
            id=r["id"],
            playbook=r["playbook"],
            playbook_version=r["playbook_version"],
            incident_id=r.get("incident_id"),
            status=RunStatus(r["status"]),
            created=parse_ts(r["created"]),
            updated=parse_ts(r["updated"]),
            drill=bool(r["drill"]),
            steps=steps,
            error=r.get("error"),
        )

    def list_runs(self, incident_id: str | None = None, limit: int = 100) -> list[PlaybookRun]:
        query = {"term": {"incident_id": incident_id}} if incident_id is not None else {"match_all": {}}
        body = {"query": query, "sort": [{"created": "desc"}], "size": limit, "_source": ["id"]}
        return [self.get_run(h["_source"]["id"]) for h in self._search(self._index("runs"), body)]

    def count_runs(self) -> int:
        return self._count(self._index("runs"))

    def _touch_run(self, run_id: str, **changes: Any) -> None:
        for _ in range(OCC_RETRIES):
            doc = self._get("runs", run_id)
            if doc is None:
                raise NotFound("playbook run", run_id)
            body = dict(doc["_source"], updated=format_ts(_now()), **changes)
            try:
                self._put("runs", run_id, body, if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"])
                return
            except ClusterError as exc:
                if exc.status != 409:
                    raise
        raise Conflict(f"playbook run {run_id!r}: too many concurrent writers")

    def set_run_status(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        self._touch_run(run_id, status=status.value, error=error)

    def record_step(self, step: StepRecord) -> None:
        self._put_step(step)
        self._touch_run(step.run_id)

    def claim_step(self, run_id: str, ref: str, attempt: int) -> bool:
        doc = self._get("steps", f"{run_id}:{ref}")
        return not (
            doc is not None and doc["_source"]["status"] in (StepStatus.SUCCEEDED.value, StepStatus.SKIPPED.value)
        )

    def swap_step(self, expected: StepRecord | None, new: StepRecord) -> bool:
        doc_id = f"{new.run_id}:{new.ref}"
        doc = self._get("steps", doc_id)
        body = {
            "run_id": new.run_id,
            "ref": new.ref,
            "action": new.action,
            "status": new.status.value,
            "attempt": new.attempt,
            "started": format_ts(new.started) if new.started else None,
            "finished": format_ts(new.finished) if new.finished else None,
            "inputs": dict(new.inputs),
            "output": {"value": new.output} if new.output is not None else None,
            "error": new.error,
        }
        if expected is None:
            if doc is not None:
                return False
            body["pos"] = self._count(self._index("steps"), {"term": {"run_id": new.run_id}})
            created = self._create("steps", doc_id, body)
            if created:
                self._touch_run(new.run_id)
            return created
        if doc is None:
            return False
        have = doc["_source"]
        want = {
            "status": expected.status.value,
            "attempt": expected.attempt,
            "started": format_ts(expected.started) if expected.started else None,
            "finished": format_ts(expected.finished) if expected.finished else None,
            "output": {"value": expected.output} if expected.output is not None else None,
            "error": expected.error,
        }
        if any(_dumps(have.get(k)) != _dumps(v) for k, v in want.items()):
            return False
        body["pos"] = have["pos"]
        try:  # optimistic concurrency: a writer that changed the record since our read wins
            self._put("steps", doc_id, body, if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"])
        except ClusterError as exc:
            if exc.status == 409:
                return False
            raise
        self._touch_run(new.run_id)
        return True

    def active_runs(self) -> dict[str, datetime]:
        statuses = [RunStatus.PENDING.value, RunStatus.RUNNING.value, RunStatus.WAITING.value]
        body = {"query": {"terms": {"status": statuses}}, "size": 10_000, "_source": ["id", "updated"]}
        return {h["_source"]["id"]: parse_ts(h["_source"]["updated"]) for h in self._search(self._index("runs"), body)}

    # audit ---------------------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, obj: str, details: Mapping[str, Any]) -> AuditEntry:
        body_json = _dumps(dict(details))
        for _ in range(OCC_RETRIES):
            head = self._get("audit-head", "head")
            seq = int(head["_source"]["seq"]) + 1 if head else 1
            prev = head["_source"]["hash"] if head else GENESIS
            existing = self._get("audit", str(seq))
            if existing is not None:
                self._advance_head(head, existing["_source"])  # a writer died between entry and head: repair
                continue
            at = format_ts(_now())
            digest = _audit_hash(seq, at, actor, action, obj, body_json, prev)
            entry = {"seq": seq, "at": at, "actor": actor, "action": action, "object": obj,
                     "details_json": body_json, "prev_hash": prev, "hash": digest}  # fmt: skip
            if not self._create("audit", str(seq), entry):
                continue  # another writer took this seq
            self._advance_head(head, entry)
            return AuditEntry(seq, parse_ts(at), actor, action, obj, json.loads(body_json), prev, digest)
        raise Conflict(f"audit log: too many concurrent writers, gave up after {OCC_RETRIES} tries")

    def _advance_head(self, head: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> None:
        body = {"seq": entry["seq"], "hash": entry["hash"]}
        try:
            if head is None:
                self._create("audit-head", "head", body)
            else:
                self._put("audit-head", "head", body, if_seq_no=head["_seq_no"], if_primary_term=head["_primary_term"])
        except ClusterError as exc:
            if exc.status != 409:  # someone else advanced it: fine
                raise

    @staticmethod
    def _audit_entry(s: Mapping[str, Any]) -> AuditEntry:
        return AuditEntry(
            s["seq"], parse_ts(s["at"]), s["actor"], s["action"], s["object"], json.loads(s["details_json"]),
            s["prev_hash"], s["hash"],
        )  # fmt: skip

    def audit_entries(self, limit: int = 1000, offset: int = 0) -> list[AuditEntry]:
        body = {"sort": [{"seq": "desc"}], "from": offset, "size": limit}
        return [self._audit_entry(h["_source"]) for h in self._search(self._index("audit"), body)]

    def _iter_audit(self) -> Iterator[Mapping[str, Any]]:
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"sort": [{"seq": "asc"}], "size": 1000}
            if after is not None:
                body["search_after"] = after
            hits = self._search(self._index("audit"), body)
            if not hits:
                return
            for hit in hits:
                yield hit["_source"]
            after = hits[-1]["sort"]

    def verify_audit(self) -> int:
        prev = GENESIS
        count = 0
        for s in self._iter_audit():
            count += 1
            expected = _audit_hash(s["seq"], s["at"], s["actor"], s["action"], s["object"], s["details_json"], prev)
            if s["seq"] != count or s["prev_hash"] != prev or s["hash"] != expected:
                raise AuditChainBroken(f"audit entry {s['seq']} does not match the chain (altered or removed entry)")
            prev = s["hash"]
        return count

    def import_incident(self, incident: Incident, timeline: Sequence[TimelineEntry]) -> bool:
        """Store a projection and its timeline verbatim (migration); False when the incident exists."""
        last = max((e.seq for e in timeline), default=0)
        if not self._create("incidents", incident.id, self._incident_doc(incident, last)):
            return False
        for e in timeline:
            body = {"incident_id": e.incident_id, "seq": e.seq, "at": format_ts(e.at), "kind": e.kind,
                    "actor": e.actor, "data": dict(e.data)}  # fmt: skip
            self._put("timeline", f"{e.incident_id}:{e.seq}", body)
        return True

    def import_dead_letter(self, letter: DeadLetter) -> bool:
        """Store a dead letter with its id and time (migration); False when the id exists."""
        body = {"id": letter.id, "at": format_ts(letter.at), "source": letter.source, "offset": letter.offset,
                "reason": letter.reason, "raw": letter.raw}  # fmt: skip
        if not self._create("dead-letters", str(letter.id), body):
            return False
        # keep the id counter ahead of imported ids so new dead letters do not collide
        self._next("dead-letters", at_least=letter.id)
        return True

    def import_audit(self, entry: AuditEntry) -> None:
        """Copy one entry verbatim (migration); entries must come in seq order so the head follows."""
        body = {"seq": entry.seq, "at": format_ts(entry.at), "actor": entry.actor, "action": entry.action,
                "object": entry.object, "details_json": _dumps(dict(entry.details)), "prev_hash": entry.prev_hash,
                "hash": entry.hash}  # fmt: skip
        if not self._create("audit", str(entry.seq), body):
            raise Conflict(f"audit entry {entry.seq} exists already in the target")
        self._put("audit-head", "head", {"seq": entry.seq, "hash": entry.hash})

    # users -----------------------------------------------------------------------------------------------
    def put_user(self, user: User) -> None:
        body = {
            "username": user.username,
            "password_hash": user.password_hash,
            "roles": list(user.roles),
            "must_change_password": user.must_change_password,
            "created": format_ts(user.created or _now()),
            "agencies": list(user.agencies),
            "disabled": user.disabled,
            "mfa_required": user.mfa_required,
            "mfa_enabled": user.mfa_enabled,
            "totp_secret": user.totp_secret,
            "totp_last_step": user.totp_last_step,
            "failed_logins": user.failed_logins,
            "locked_until": format_ts(user.locked_until) if user.locked_until else None,
        }
        self._put("users", user.username, body)

    @staticmethod
    def _user(s: Mapping[str, Any]) -> User:
        # users written by older versions lack the security fields: their defaults apply
        return User(s["username"], s["password_hash"], tuple(s["roles"]), bool(s["must_change_password"]),
                    parse_ts(s["created"]), agencies=tuple(s.get("agencies") or ()),
                    disabled=bool(s.get("disabled", False)), mfa_required=bool(s.get("mfa_required", False)),
                    mfa_enabled=bool(s.get("mfa_enabled", False)), totp_secret=s.get("totp_secret") or "",
                    totp_last_step=int(s.get("totp_last_step") or 0), failed_logins=int(s.get("failed_logins") or 0),
                    locked_until=parse_ts(s["locked_until"]) if s.get("locked_until") else None)  # fmt: skip

    def get_user(self, username: str) -> User:
        doc = self._get("users", username)
        if doc is None:
            raise NotFound("user", username)
        return self._user(doc["_source"])

    def list_users(self) -> list[User]:
        body = {"sort": [{"username": "asc"}], "size": 10_000}
        return [self._user(h["_source"]) for h in self._search(self._index("users"), body)]

    # API tokens ------------------------------------------------------------------------------------------
    def put_api_token(self, token: ApiToken) -> None:
        def ts(value: datetime | None) -> str | None:
            return format_ts(value) if value is not None else None

        body = {"id": token.id, "name": token.name, "owner": token.owner, "token_hash": token.token_hash,
                "roles": list(token.roles), "agencies": list(token.agencies), "created": format_ts(token.created),
                "expires": ts(token.expires), "last_used": ts(token.last_used),
                "revoked": ts(token.revoked)}  # fmt: skip
        self._put("api-tokens", token.id, body)

    @staticmethod
    def _api_token(s: Mapping[str, Any]) -> ApiToken:
        def ts(value: str | None) -> datetime | None:
            return parse_ts(value) if value else None

        return ApiToken(id=s["id"], name=s["name"], owner=s["owner"], token_hash=s["token_hash"],
                        roles=tuple(s["roles"]), agencies=tuple(s["agencies"] or ()), created=parse_ts(s["created"]),
                        expires=ts(s.get("expires")), last_used=ts(s.get("last_used")),
                        revoked=ts(s.get("revoked")))  # fmt: skip

    def get_api_token(self, token_id: str) -> ApiToken:
        doc = self._get("api-tokens", token_id)
        if doc is None:
            raise NotFound("api token", token_id)
        return self._api_token(doc["_source"])

    def list_api_tokens(self, owner: str | None = None) -> list[ApiToken]:
        query: dict[str, Any] = {"term": {"owner": owner}} if owner is not None else {"match_all": {}}
        body = {"query": query, "sort": [{"created": "desc"}, {"id": "asc"}], "size": 10_000}
        return [self._api_token(h["_source"]) for h in self._search(self._index("api-tokens"), body)]

    def touch_api_token(self, token_id: str, at: datetime) -> None:
        # a partial update: a revocation written meanwhile stays
        self.http.request("POST", f"/{self._index('api-tokens')}/_update/{_q(token_id)}",
                          {"doc": {"last_used": format_ts(at)}}, self._params())  # fmt: skip

    # analyst queries (console); the bodies are in store.elastic_analyst ---------------------------------
    def _raw_search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        params = {"ignore_unavailable": "true"}
        result: dict[str, Any] = self.http.request("POST", f"/{index}/_search", dict(body), params)
        return result

    def query_incidents(self, flt: IncidentFilter, limit: int = 50, offset: int = 0) -> IncidentPage:
        result = self._raw_search(self._index("incidents"), elastic_analyst.incident_search(flt, limit, offset))
        hits = result.get("hits", {})
        total = hits.get("total", {}).get("value", 0)
        return IncidentPage(tuple(self._incident(h["_source"]) for h in hits.get("hits", [])), int(total))

    def find_events(
        self,
        query: Node | None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        histogram: bool = False,
    ) -> EventPage:
        interval = choose_interval(start, end) if histogram and start is not None and end is not None else None
        body = elastic_analyst.event_search(query, start, end, limit, offset, interval)
        result = self._raw_search(self._events, body)
        items = tuple(self._event(h) for h in result.get("hits", {}).get("hits", []))
        if interval is None:
            return EventPage(items, -1)
        buckets = tuple(
            Bucket(parse_ts(b["key_as_string"]) if "key_as_string" in b else datetime.fromtimestamp(
                b["key"] / 1000, tz=timezone.utc), int(b["doc_count"]))
            for b in result.get("aggregations", {}).get("histogram", {}).get("buckets", [])
        )  # fmt: skip
        total = int(result.get("hits", {}).get("total", {}).get("value", 0))
        return EventPage(items, total, buckets, interval)

    def incident_stats(
        self, start: datetime, end: datetime, interval: timedelta, scope: tuple[str, ...] | None = None
    ) -> IncidentStats:
        result = self._raw_search(self._index("incidents"), elastic_analyst.stats_search(start, end, interval, scope))
        aggs = result.get("aggregations", {})
        # closings: status entries whose value is "closed" (the entry data is not indexed: checked here)
        closed_at: dict[str, datetime] = {}
        after: list[Any] | None = None
        while True:
            hits = self._search(self._index("timeline"), elastic_analyst.closings_search(start, end, after))
            if not hits:
                break
            for hit in hits:
                source = hit["_source"]
                if source.get("data", {}).get("value") == IncidentStatus.CLOSED.value:
                    closed_at[source["incident_id"]] = parse_ts(source["at"])
            after = hits[-1]["sort"]
        step = interval.total_seconds()
        done: dict[int, list[float]] = {}
        ids = sorted(closed_at)
        for i in range(0, len(ids), 1000):
            body = {"query": {"bool": {"filter": [{"ids": {"values": ids[i : i + 1000]}},
                                                  elastic_analyst.incident_query(IncidentFilter(scope=scope))]}},
                    "runtime_mappings": elastic_analyst.RUNTIME, "size": 1000}  # fmt: skip
            for hit in self._search(self._index("incidents"), body):
                incident = self._incident(hit["_source"])
                if incident.status is not IncidentStatus.CLOSED:
                    continue  # re-opened since
                at = closed_at[incident.id]
                k = int((at - start).total_seconds() // step)
                done.setdefault(k, []).append((at - incident.created).total_seconds())
        trend = []
        for k, b in enumerate(aggs.get("trend", {}).get("buckets", [])):
            closings = done.get(k, [])
            trend.append(TrendPoint(
                start + k * interval, int(b["doc_count"]), b.get("mttd", {}).get("value"),
                len(closings), sum(closings) / len(closings) if closings else None))  # fmt: skip

        def pairs(name: str) -> tuple[tuple[str, int], ...]:
            return tuple((str(b["key"]), int(b["doc_count"])) for b in aggs.get(name, {}).get("buckets", []))

        return IncidentStats(
            trend=tuple(trend),
            by_sector=pairs("sector"),
            by_status=pairs("status"),
            by_severity=tuple((Severity(int(k)).label, n) for k, n in pairs("severity")),
        )

    def source_activity(self, since: datetime) -> list[SourceActivity]:
        result = self._raw_search(self._events, elastic_analyst.sources_search(since))
        return [
            SourceActivity(str(b["key"]), int(b["doc_count"]),
                           datetime.fromtimestamp(b["last"]["value"] / 1000, tz=timezone.utc))
            for b in result.get("aggregations", {}).get("datasets", {}).get("buckets", [])
        ]  # fmt: skip

    def move_alerts(self, alert_ids: Sequence[str], source_id: str, target_id: str, actor: str) -> list[str]:
        if source_id == target_id:
            raise Conflict(f"cannot move alerts from incident {source_id!r} to itself")
        for incident_id in (source_id, target_id):
            if self._get("incidents", incident_id) is None:
                raise NotFound("incident", incident_id)
        moved: list[str] = []
        for alert_id in dict.fromkeys(alert_ids):
            for _ in range(OCC_RETRIES):
                doc = self._get("alerts", alert_id)
                if doc is None or doc["_source"].get("incident_id") != source_id:
                    break
                try:
                    self._put("alerts", alert_id, dict(doc["_source"], incident_id=target_id),
                              if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"])  # fmt: skip
                except ClusterError as exc:
                    if exc.status != 409:
                        raise
                    continue
                moved.append(alert_id)
                break
        if not moved:
            return moved
        self.http.request("POST", f"/{self._index('alerts')}/_refresh")
        for incident_id, kind, data in (
            (source_id, "alerts_moved_out", {"alert_ids": moved, "to": target_id}),
            (target_id, "alerts_moved_in", {"alert_ids": moved, "from": source_id}),
        ):
            alerts = self.list_alerts(incident_id=incident_id, limit=10_000)

            def project(source: dict[str, Any], alerts: list[Alert] = alerts) -> dict[str, Any]:
                if not alerts:
                    return dict(source, alert_count=0, entities={}, tags=[])
                entities: dict[str, list[str]] = {}
                for alert in alerts:
                    for key, value in alert.entities.items():
                        bucket = entities.setdefault(key, [])
                        if value not in bucket:
                            bucket.append(value)
                return dict(
                    source,
                    severity=max(int(a.severity) for a in alerts),
                    first_event_time=format_ts(min(a.event_time for a in alerts)),
                    last_event_time=format_ts(max(a.event_time for a in alerts)),
                    entities=entities,
                    tags=list(dict.fromkeys(t for a in alerts for t in a.tags)),
                    alert_count=len(alerts),
                )

            self._append(incident_id, kind, actor, data, project)
        return moved


def _q(doc_id: str) -> str:
    """An id as one URL path segment (ids come from events and users: never let them change the path)."""
    from urllib.parse import quote

    return quote(doc_id, safe="")


def wait_for_cluster(store: ElasticStore, timeout: float = 30.0) -> None:
    """Block until the cluster answers (deployment scripts, the contract fixture)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.http.request("GET", "/_cluster/health", params={"wait_for_status": "yellow", "timeout": "5s"})
            return
        except StoreError:
            if time.monotonic() > deadline:
                raise


__all__ = ["BackPressure", "ClusterError", "ElasticStore", "parse_url", "wait_for_cluster"]
