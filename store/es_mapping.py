"""Elasticsearch / OpenSearch index templates and lifecycle policies, generated from the schema.

Everything here is pure: it turns :mod:`store.schema` and a :class:`RetentionConfig`
into the JSON bodies the cluster takes.  :mod:`store.elastic` installs them.

* One component template holds the ECS mapping of events (``dynamic: strict``: a
  document with a field outside the schema is rejected by the cluster too).
* Events go to data streams named ``<prefix>-events-<dataset>-sl<level>``, so a
  retention rule can pick a source (``event.dataset``) and a security level
  (``asset.security_level``) by index pattern.
* Retention is hot -> warm -> delete; the default is 90 days hot and 12 months in
  total, overridable per source and/or level.  Elasticsearch gets ILM policies,
  OpenSearch ISM policies with the same phases.
* Alerts, incidents, timeline, runs, steps, audit, dead letters and users live in
  plain indices with explicit mappings.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from store.errors import StoreError
from store.schema import FIELDS, SCHEMA_VERSION, FieldSpec, FieldType


class Flavor(enum.Enum):
    """The two cluster families; they differ in a few mapping types and the lifecycle API."""

    ELASTICSEARCH = "elasticsearch"
    OPENSEARCH = "opensearch"


class MappingError(StoreError):
    """The schema or a retention setting cannot be turned into a valid mapping or policy."""


#: field type -> mapping body; FLATTENED differs per flavor (OpenSearch calls it flat_object)
_TYPE_MAPPING: dict[FieldType, dict[str, Any]] = {
    FieldType.KEYWORD: {"type": "keyword", "ignore_above": 1024},
    FieldType.TEXT: {"type": "text"},
    FieldType.LONG: {"type": "long"},
    FieldType.DOUBLE: {"type": "double"},
    FieldType.BOOLEAN: {"type": "boolean"},
    FieldType.DATE: {"type": "date", "format": "strict_date_optional_time"},
    FieldType.IP: {"type": "ip"},
}

#: metadata every stored event document carries besides schema fields (see Event.to_document)
_META_PROPERTIES: dict[str, Any] = {
    "ecs": {"properties": {"version": {"type": "keyword"}}},
    "citysoc": {"properties": {"schema_version": {"type": "keyword"}}},
}


def field_mapping(spec: FieldSpec, flavor: Flavor) -> dict[str, Any]:
    """The mapping of one schema field (arrays need no special mapping in Lucene)."""
    if spec.type is FieldType.FLATTENED:
        return {"type": "flattened" if flavor is Flavor.ELASTICSEARCH else "flat_object"}
    return dict(_TYPE_MAPPING[spec.type])


def event_properties(flavor: Flavor = Flavor.ELASTICSEARCH) -> dict[str, Any]:
    """The nested ``properties`` tree of the event mapping, from every schema field."""
    root: dict[str, Any] = {}
    for name, spec in FIELDS.items():
        parts = [name] if name == "@timestamp" else name.split(".")
        node = root
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {"properties": {}})
            if "properties" not in child:
                raise MappingError(f"schema field {name!r}: {'.'.join(parts[: i + 1])!r} is both a field and an object")
            node = child["properties"]
        if parts[-1] in node:
            raise MappingError(f"schema field {name!r} is both a field and an object")
        node[parts[-1]] = field_mapping(spec, flavor)
    for key, value in _META_PROPERTIES.items():
        root.setdefault(key, {"properties": {}})["properties"].update(value["properties"])
    return root


def iter_leaf_mappings(properties: Mapping[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """``(dotted name, mapping)`` of every leaf in a properties tree (used to check templates)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for key, value in properties.items():
        name = f"{prefix}{key}"
        if "properties" in value:
            out.extend(iter_leaf_mappings(value["properties"], name + "."))
        else:
            out.append((name, value))
    return out


# retention ---------------------------------------------------------------------------------------

_NAME_OK = re.compile(r"[^a-z0-9_]+")


def stream_part(value: str) -> str:
    """A dataset name as it may appear in an index name (lowercase, ``[a-z0-9_]``)."""
    cleaned = _NAME_OK.sub("_", value.lower()).strip("_")
    return cleaned or "unknown"


@dataclass(frozen=True)
class Retention:
    """Days in the hot tier and days in total before deletion."""

    hot_days: int = 90
    total_days: int = 365

    def __post_init__(self) -> None:
        if self.hot_days < 1:
            raise MappingError(f"retention: hot_days must be at least 1, got {self.hot_days}")
        if self.total_days < self.hot_days:
            raise MappingError(
                f"retention: total_days ({self.total_days}) must not be shorter than hot_days ({self.hot_days})"
            )

    @property
    def key(self) -> str:
        return f"h{self.hot_days}-t{self.total_days}"


@dataclass(frozen=True)
class RetentionRule:
    """A retention override for a source (``event.dataset``), a security level (1-5), or both."""

    retention: Retention
    dataset: str | None = None
    security_level: int | None = None

    def __post_init__(self) -> None:
        if self.dataset is None and self.security_level is None:
            raise MappingError("retention rule: give a dataset, a security level or both (the default has neither)")
        if self.security_level is not None and not 1 <= self.security_level <= 5:
            raise MappingError(f"retention rule: security level must be 1-5, got {self.security_level}")

    def pattern(self, prefix: str) -> str:
        dataset = stream_part(self.dataset) if self.dataset is not None else "*"
        level = f"sl{self.security_level}" if self.security_level is not None else "*"
        return f"{prefix}-events-{dataset}-{level}"

    @property
    def priority(self) -> int:
        # a rule naming both wins over one naming a dataset, which wins over one naming a level
        return 200 + (20 if self.dataset is not None else 0) + (10 if self.security_level is not None else 0)


@dataclass(frozen=True)
class RetentionConfig:
    default: Retention = field(default_factory=Retention)
    rules: tuple[RetentionRule, ...] = ()

    def __post_init__(self) -> None:
        seen: set[tuple[str | None, int | None]] = set()
        for rule in self.rules:
            key = (rule.dataset and stream_part(rule.dataset), rule.security_level)
            if key in seen:
                raise MappingError(
                    f"retention rule for dataset={rule.dataset!r} level={rule.security_level} is given twice"
                )
            seen.add(key)

    def retentions(self) -> list[Retention]:
        return list(dict.fromkeys([self.default, *(r.retention for r in self.rules)]))

    def for_stream(self, dataset: str, security_level: int | None) -> Retention:
        """The retention a stream gets (the same choice the template priorities make in the cluster)."""
        best: RetentionRule | None = None
        for rule in self.rules:
            if rule.dataset is not None and stream_part(rule.dataset) != stream_part(dataset):
                continue
            if rule.security_level is not None and rule.security_level != security_level:
                continue
            if best is None or rule.priority > best.priority:
                best = rule
        return best.retention if best else self.default


def stream_name(prefix: str, dataset: str | None, security_level: int | None) -> str:
    """The data stream an event goes to."""
    level = f"sl{security_level}" if security_level is not None else "slnone"
    return f"{prefix}-events-{stream_part(dataset or 'unknown')}-{level}"


def policy_name(prefix: str, retention: Retention) -> str:
    return f"{prefix}-events-{retention.key}"


def ilm_policy(retention: Retention) -> dict[str, Any]:
    """Elasticsearch ILM: roll over daily or at 50 GB per shard, warm after hot_days, delete after total_days."""
    phases: dict[str, Any] = {
        "hot": {
            "min_age": "0ms",
            "actions": {
                "rollover": {"max_age": "1d", "max_primary_shard_size": "50gb"},
                "set_priority": {"priority": 100},
            },
        },
        "delete": {"min_age": f"{retention.total_days}d", "actions": {"delete": {}}},
    }
    if retention.total_days > retention.hot_days:
        phases["warm"] = {
            "min_age": f"{retention.hot_days}d",
            "actions": {"set_priority": {"priority": 50}, "forcemerge": {"max_num_segments": 1}, "readonly": {}},
        }
    return {"policy": {"phases": phases, "_meta": {"managed_by": "citysoc", "schema_version": SCHEMA_VERSION}}}


def ism_policy(retention: Retention, index_pattern: str, priority: int) -> dict[str, Any]:
    """OpenSearch ISM with the same phases; ``ism_template`` attaches it to new backing indices."""
    states: list[dict[str, Any]] = [
        {
            "name": "hot",
            "actions": [{"rollover": {"min_index_age": "1d", "min_primary_shard_size": "50gb"}}],
            "transitions": [
                {"state_name": "warm", "conditions": {"min_index_age": f"{retention.hot_days}d"}}
                if retention.total_days > retention.hot_days
                else {"state_name": "delete", "conditions": {"min_index_age": f"{retention.total_days}d"}}
            ],
        },
        {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
    ]
    if retention.total_days > retention.hot_days:
        states.insert(
            1,
            {
                "name": "warm",
                "actions": [{"force_merge": {"max_num_segments": 1}}, {"read_only": {}}],
                "transitions": [{"state_name": "delete", "conditions": {"min_index_age": f"{retention.total_days}d"}}],
            },
        )
    return {
        "policy": {
            "description": f"CitySOC events: {retention.hot_days} days hot, {retention.total_days} days in total",
            "default_state": "hot",
            "states": states,
            "ism_template": [{"index_patterns": [f".ds-{index_pattern}*"], "priority": priority}],
        }
    }


# templates -------------------------------------------------------------------------------------


def events_component_template(flavor: Flavor) -> dict[str, Any]:
    return {
        "template": {"mappings": {"dynamic": "strict", "properties": event_properties(flavor)}},
        "_meta": {"managed_by": "citysoc", "schema_version": SCHEMA_VERSION},
    }


def events_index_templates(prefix: str, config: RetentionConfig, flavor: Flavor) -> dict[str, dict[str, Any]]:
    """One data-stream template for the default retention and one per retention rule, by name."""
    mapping_component = f"{prefix}-events-mappings"
    out: dict[str, dict[str, Any]] = {}
    entries: list[tuple[str, str, int, Retention]] = [(f"{prefix}-events", f"{prefix}-events-*", 100, config.default)]
    for rule in config.rules:
        pattern = rule.pattern(prefix)
        entries.append(
            (
                f"{prefix}-events-{pattern[len(prefix) + 8 :].replace('*', 'any')}",
                pattern,
                rule.priority,
                rule.retention,
            )
        )
    for name, pattern, priority, retention in entries:
        settings: dict[str, Any] = {"number_of_replicas": 1}
        if flavor is Flavor.ELASTICSEARCH:
            settings["index.lifecycle.name"] = policy_name(prefix, retention)
        out[name] = {
            "index_patterns": [pattern],
            "data_stream": {},
            "priority": priority,
            "composed_of": [mapping_component],
            "template": {"settings": settings},
            "_meta": {"managed_by": "citysoc", "retention": retention.key},
        }
    return out


def ism_policies(prefix: str, config: RetentionConfig) -> dict[str, dict[str, Any]]:
    """OpenSearch: one ISM policy per template (ISM attaches by pattern, not by index setting)."""
    out: dict[str, dict[str, Any]] = {}
    out[f"{prefix}-events-default"] = ism_policy(config.default, f"{prefix}-events-", 100)
    for rule in config.rules:
        name = f"{prefix}-events-{rule.pattern(prefix)[len(prefix) + 8 :].replace('*', 'any')}"
        out[name] = ism_policy(rule.retention, rule.pattern(prefix).rstrip("*"), rule.priority)
    return out


def ilm_policies(prefix: str, config: RetentionConfig) -> dict[str, dict[str, Any]]:
    return {policy_name(prefix, r): ilm_policy(r) for r in config.retentions()}


_KW = {"type": "keyword"}
_DATE = {"type": "date", "format": "strict_date_optional_time"}
_OBJ = {"type": "object", "enabled": False}  # kept in _source, never indexed (free-form JSON)

#: record indices (suffix -> properties); free-form payloads are stored but not indexed
RECORD_PROPERTIES: dict[str, dict[str, Any]] = {
    "alerts": {
        "id": _KW, "rule_id": _KW, "rule_title": {"type": "text"}, "severity": {"type": "integer"},
        "created": _DATE, "event_time": _DATE, "event_ids": _KW, "entities": _OBJ, "tags": _KW,
        "source": _KW, "description": {"type": "text"}, "incident_id": _KW, "group_by": _KW,
    },
    "incidents": {
        "id": _KW, "title": {"type": "text"}, "severity": {"type": "integer"}, "status": _KW,
        "created": _DATE, "updated": _DATE, "first_event_time": _DATE, "last_event_time": _DATE,
        "group_key": _KW, "entities": _OBJ, "tags": _KW, "alert_count": {"type": "integer"},
        "mttd_seconds": {"type": "double"}, "assignee": _KW, "verdict": _KW, "timeline_seq": {"type": "long"},
    },
    "timeline": {
        "incident_id": _KW, "seq": {"type": "long"}, "at": _DATE, "kind": _KW, "actor": _KW, "data": _OBJ,
    },
    "runs": {
        "id": _KW, "playbook": _KW, "playbook_version": _KW, "incident_id": _KW, "status": _KW,
        "created": _DATE, "updated": _DATE, "drill": {"type": "boolean"}, "error": {"type": "text"},
    },
    "steps": {
        "run_id": _KW, "ref": _KW, "action": _KW, "status": _KW, "attempt": {"type": "integer"},
        "started": _DATE, "finished": _DATE, "inputs": _OBJ, "output": _OBJ, "error": {"type": "text"},
        "pos": {"type": "integer"},
    },
    "audit": {
        "seq": {"type": "long"}, "at": _DATE, "actor": _KW, "action": _KW, "object": _KW,
        "details_json": {"type": "keyword", "index": False, "doc_values": False},
        "prev_hash": _KW, "hash": _KW,
    },
    "audit-head": {"seq": {"type": "long"}, "hash": _KW},
    "dead-letters": {
        "id": {"type": "long"}, "at": _DATE, "source": _KW, "offset": _KW, "reason": {"type": "text"},
        "raw": {"type": "text", "index": False},
    },
    "counters": {"value": {"type": "long"}},
    "users": {
        "username": _KW, "password_hash": {"type": "keyword", "index": False, "doc_values": False},
        "roles": _KW, "must_change_password": {"type": "boolean"}, "created": _DATE,
        "agencies": _KW, "disabled": {"type": "boolean"}, "mfa_required": {"type": "boolean"},
        "mfa_enabled": {"type": "boolean"}, "totp_secret": {"type": "keyword", "index": False, "doc_values": False},
        "totp_last_step": {"type": "long"}, "failed_logins": {"type": "integer"}, "locked_until": _DATE,
    },
    "api-tokens": {
        "id": _KW, "name": _KW, "owner": _KW, "token_hash": {"type": "keyword", "index": False, "doc_values": False},
        "roles": _KW, "agencies": _KW, "created": _DATE, "expires": _DATE, "last_used": _DATE, "revoked": _DATE,
    },
}  # fmt: skip


def record_index_body(suffix: str) -> dict[str, Any]:
    try:
        properties = RECORD_PROPERTIES[suffix]
    except KeyError as exc:
        raise MappingError(f"no record index {suffix!r} (known: {', '.join(RECORD_PROPERTIES)})") from exc
    return {
        "settings": {"number_of_replicas": 1, "refresh_interval": "1s"},
        "mappings": {"dynamic": "strict", "properties": properties},
    }
