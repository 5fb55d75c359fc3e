"""Templates and lifecycle policies generated from the schema, checked against the declared ECS types."""

from __future__ import annotations

import pytest

from store.es_mapping import (
    Flavor,
    MappingError,
    Retention,
    RetentionConfig,
    RetentionRule,
    events_component_template,
    events_index_templates,
    ilm_policies,
    ilm_policy,
    ism_policies,
    iter_leaf_mappings,
    record_index_body,
    stream_name,
)
from store.event import Event
from store.schema import FIELDS, FieldType
from tests.helpers import event

ES_TYPES = {
    FieldType.KEYWORD: "keyword",
    FieldType.TEXT: "text",
    FieldType.LONG: "long",
    FieldType.DOUBLE: "double",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.IP: "ip",
}


@pytest.mark.parametrize("flavor", list(Flavor))
def test_every_schema_field_is_mapped_with_its_declared_type(flavor: Flavor) -> None:
    mappings = events_component_template(flavor)["template"]["mappings"]
    assert mappings["dynamic"] == "strict"  # a field outside the schema is refused by the cluster too
    leaves = dict(iter_leaf_mappings(mappings["properties"]))
    flat_type = "flattened" if flavor is Flavor.ELASTICSEARCH else "flat_object"
    for name, spec in FIELDS.items():
        expected = flat_type if spec.type is FieldType.FLATTENED else ES_TYPES[spec.type]
        assert leaves[name]["type"] == expected, name
    assert set(leaves) == set(FIELDS) | {"ecs.version", "citysoc.schema_version"}


def test_ips_dates_and_ot_iot_fields_get_engine_types() -> None:
    mappings = events_component_template(Flavor.ELASTICSEARCH)["template"]["mappings"]
    leaves = dict(iter_leaf_mappings(mappings["properties"]))
    assert leaves["source.ip"]["type"] == "ip"
    assert leaves["@timestamp"]["type"] == "date"
    assert leaves["message"]["type"] == "text"
    ot_iot = [n for n in FIELDS if n.startswith(("ot.", "iot."))]
    assert ot_iot, "the schema declares ot.* and iot.* fields"
    assert all(n in leaves for n in ot_iot)


def test_a_stored_document_uses_only_mapped_paths() -> None:
    props = events_component_template(Flavor.ELASTICSEARCH)["template"]["mappings"]["properties"]
    leaves = dict(iter_leaf_mappings(props))
    doc = event(1, {"source.ip": "10.20.5.66", "event.action": "login", "labels.site": "d1"}).to_document()

    def paths(node: dict, prefix: str = "") -> list[str]:
        out = []
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and name not in leaves:
                out.extend(paths(value, name + "."))
            else:
                out.append(name)
        return out

    assert set(paths(doc)) <= set(leaves)
    assert Event.from_document(doc).fields["source.ip"] == "10.20.5.66"


def test_default_retention_is_90_days_hot_and_12_months_total() -> None:
    phases = ilm_policy(Retention())["policy"]["phases"]
    assert phases["warm"]["min_age"] == "90d"
    assert phases["delete"]["min_age"] == "365d"
    assert "rollover" in phases["hot"]["actions"]


def test_retention_per_source_and_security_level_picks_the_most_specific() -> None:
    config = RetentionConfig(
        rules=(
            RetentionRule(Retention(30, 180), dataset="camera.platform"),
            RetentionRule(Retention(180, 1825), security_level=4),
            RetentionRule(Retention(365, 3650), dataset="zeek.modbus", security_level=4),
        )
    )
    templates = events_index_templates("citysoc", config, Flavor.ELASTICSEARCH)
    by_pattern = {t["index_patterns"][0]: t for t in templates.values()}
    assert set(by_pattern) == {
        "citysoc-events-*",
        "citysoc-events-camera_platform-*",
        "citysoc-events-*-sl4",
        "citysoc-events-zeek_modbus-sl4",
    }
    priorities = [by_pattern[p]["priority"] for p in ("citysoc-events-*", "citysoc-events-*-sl4",
                                                       "citysoc-events-camera_platform-*",
                                                       "citysoc-events-zeek_modbus-sl4")]  # fmt: skip
    assert priorities == sorted(priorities) and len(set(priorities)) == 4
    assert all(t["data_stream"] == {} for t in templates.values())
    policies = ilm_policies("citysoc", config)
    for template in templates.values():
        assert template["template"]["settings"]["index.lifecycle.name"] in policies
    assert config.for_stream("zeek.modbus", 4) == Retention(365, 3650)
    assert config.for_stream("zeek.modbus", 2) == Retention()
    assert config.for_stream("camera.platform", 4) == Retention(30, 180)
    assert stream_name("citysoc", "zeek.modbus", 4) == "citysoc-events-zeek_modbus-sl4"
    # the stream name matches the template the same choice picks
    assert by_pattern["citysoc-events-zeek_modbus-sl4"]["index_patterns"][0] == stream_name("citysoc", "zeek.modbus", 4)


def test_opensearch_gets_ism_policies_with_the_same_phases() -> None:
    config = RetentionConfig(rules=(RetentionRule(Retention(7, 30), dataset="syslog"),))
    policies = ism_policies("citysoc", config)
    default = policies["citysoc-events-default"]["policy"]
    assert [s["name"] for s in default["states"]] == ["hot", "warm", "delete"]
    assert default["states"][0]["transitions"][0]["conditions"]["min_index_age"] == "90d"
    assert default["states"][1]["transitions"][0]["conditions"]["min_index_age"] == "365d"
    assert default["ism_template"][0]["index_patterns"] == [".ds-citysoc-events-*"]
    syslog = next(p["policy"] for n, p in policies.items() if n != "citysoc-events-default")
    assert syslog["ism_template"][0]["index_patterns"] == [".ds-citysoc-events-syslog-*"]
    assert syslog["ism_template"][0]["priority"] > default["ism_template"][0]["priority"]
    templates = events_index_templates("citysoc", config, Flavor.OPENSEARCH)
    assert all("index.lifecycle.name" not in t["template"]["settings"] for t in templates.values())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Retention(0, 10), "hot_days"),
        (lambda: Retention(100, 30), "total_days"),
        (lambda: RetentionRule(Retention()), "dataset, a security level"),
        (lambda: RetentionRule(Retention(), security_level=9), "1-5"),
        (
            lambda: RetentionConfig(rules=(RetentionRule(Retention(), "syslog"), RetentionRule(Retention(), "SysLog"))),
            "given twice",
        ),
        (lambda: record_index_body("nope"), "no record index"),
    ],
)
def test_bad_retention_settings_say_what_is_wrong(make: object, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        make()  # type: ignore[operator]


def test_record_indices_are_strict() -> None:
    body = record_index_body("incidents")
    assert body["mappings"]["dynamic"] == "strict"
    assert body["mappings"]["properties"]["group_key"]["type"] == "keyword"
