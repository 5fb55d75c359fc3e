"""Sigma -> Lucene / ES|QL / EQL through pySigma's Elasticsearch backends with our field pipeline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sigma.rule import SigmaRule

from detections.engine import DetectionEngine
from detections.es_query import QueryConversionError, QueryLanguage, convert_paths, hunt_candidates
from detections.incidents import IncidentManager
from detections.pack import RULES_DIR, load_rules
from store.base import Store
from store.elastic import ElasticStore
from store.schema import FIELDS
from tests.helpers import T0, event
from tests.store.conftest import cluster_store

BRUTE_FORCE = "0f6f3a43-4f0e-4c70-8d0b-6a5a2c0d1b02"
LOGIN_FAILURE = "5d0b7c0e-3f8e-4d53-9a1e-0c1f7b2a9e01"


@pytest.mark.parametrize("language", list(QueryLanguage))
def test_the_built_in_pack_converts_to_schema_field_names(language: QueryLanguage) -> None:
    converted = convert_paths([RULES_DIR], language)
    single = [c for c in converted if not c.correlation]
    assert len(single) >= 5 and all(c.queries or (c.evaluated_by == "engine" and c.note) for c in single)
    assert sum(1 for c in single if c.queries) >= 5
    pattern = {
        QueryLanguage.LUCENE: r"(?<![\w.\\])([A-Za-z@_][\w.]*):",
        QueryLanguage.ESQL: r"([A-Za-z@][\w.]*)\s*==",
        QueryLanguage.EQL: r"([A-Za-z@][\w.]*):\"",
    }[language]
    fields = {f for c in single for q in c.queries for f in re.findall(pattern, q) if f != "_exists_"}
    assert fields and fields <= set(FIELDS), fields - set(FIELDS)


def test_queries_name_the_event_streams_and_the_rule_logic() -> None:
    esql = {c.rule_id: c for c in convert_paths([RULES_DIR / "iot"], QueryLanguage.ESQL)}
    assert esql[LOGIN_FAILURE].queries == (
        'from citysoc-events-* metadata _id, _index, _version | where event.action=="login" '
        'and event.outcome=="failure"',
    )
    lucene = {c.rule_id: c for c in convert_paths([RULES_DIR / "iot"], QueryLanguage.LUCENE)}
    assert lucene[LOGIN_FAILURE].queries == ("event.action:login AND event.outcome:failure",)
    modbus = convert_paths([RULES_DIR / "ot" / "modbus_write_from_non_engineering_host.yml"], QueryLanguage.LUCENE)[0]
    assert "NOT source.ip:10.30.9.0\\/24" in modbus.queries[0]


def test_correlations_say_who_evaluates_them() -> None:
    by_lang = {lang: {c.rule_id: c for c in convert_paths([RULES_DIR / "iot"], lang)} for lang in QueryLanguage}
    lucene = by_lang[QueryLanguage.LUCENE][BRUTE_FORCE]
    assert lucene.correlation and lucene.evaluated_by == "engine" and lucene.queries == ()
    assert LOGIN_FAILURE in lucene.note
    esql = by_lang[QueryLanguage.ESQL][BRUTE_FORCE]
    assert "stats event_count=count() by timebucket, source.ip" in esql.queries[0]
    assert "where event_count >= 5" in esql.queries[0]
    eql = by_lang[QueryLanguage.EQL][BRUTE_FORCE]
    assert eql.queries[0].startswith("sequence by source.ip with maxspan=5m")
    assert all(c.evaluated_by == "engine" for c in (esql, eql))


def test_a_broken_rule_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yml"
    bad.write_text("title: x\nlogsource: {product: citysoc}\ndetection: {sel: {a: 1}, condition: nope}\n")
    with pytest.raises(QueryConversionError, match=r"broken\.yml"):
        convert_paths([bad], QueryLanguage.LUCENE)
    with pytest.raises(QueryConversionError, match="no such rule file"):
        convert_paths([tmp_path / "missing.yml"], QueryLanguage.LUCENE)


@pytest.fixture(params=["elasticsearch", "opensearch"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Store]:
    yield from cluster_store(request.param)


def test_retro_hunt_on_a_cluster_gives_the_stream_alerts(cluster: Store) -> None:
    failures = [event(i * 10, {"event.dataset": "camera.platform", "event.action": "login",
                               "event.outcome": "failure", "source.ip": "10.20.5.66"}) for i in range(6)]  # fmt: skip
    noise = [event(i, {"event.dataset": "camera.platform", "event.action": "login", "event.outcome": "success",
                       "user.name": "op.tran", "source.ip": "10.10.3.22"}) for i in range(5)]  # fmt: skip
    cluster.put_events([*failures, *noise])
    rules = load_rules([RULES_DIR / "iot"])
    sigma_rules = [entry.rule for entry in rules.report.loaded if isinstance(entry.rule, SigmaRule)]
    assert isinstance(cluster, ElasticStore)
    candidates = hunt_candidates(cluster, sigma_rules, T0, T0 + timedelta(hours=1))
    assert [e.id for e in candidates] == [e.id for e in failures]
    engine = DetectionEngine(cluster, rules.ruleset, IncidentManager(cluster), rules.correlator, rules.names)
    alerts = [a for e in candidates for a in engine.evaluate(e)]
    assert [a.rule_id for a in alerts] == [BRUTE_FORCE]
