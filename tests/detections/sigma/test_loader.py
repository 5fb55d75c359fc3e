"""The Sigma loader: our own rule pack, the SigmaHQ packs, and every kind of broken rule file."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from detections.sigma.loader import (
    CORRELATION_REASON,
    Location,
    RuleKind,
    RuleStatus,
    SigmaLoadError,
    find_rule_files,
    load_rule_text,
    load_rules,
)
from detections.sigma.matcher import RuleSet, compile_collection
from store.schema import lookup
from tests.helpers import REPO, SHARED_DATA, event

SIGMAHQ = SHARED_DATA / "sigma"
SIGMAHQ_PACKS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
OUR_RULES = REPO / "detections" / "rules"

GOOD_RULE = """\
title: Camera Firmware Update
id: 3c7e9d21-6a4f-4f1b-8e2d-9b0a5c6d7e04
status: experimental
logsource:
    product: citysoc
    service: camera
detection:
    selection:
        event.action: firmware_update
    condition: selection
level: medium
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ SigmaHQ


@pytest.fixture(scope="module")
def sigmahq_dirs() -> list[Path]:
    dirs = [SIGMAHQ / pack for pack in SIGMAHQ_PACKS]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        pytest.skip(f"../shared/data/sigma absent: the SigmaHQ rule packs are not checked out ({', '.join(missing)})")
    return dirs


def test_sigmahq_packs_are_fully_reported_and_load(sigmahq_dirs: list[Path]) -> None:
    files = sorted(p for d in sigmahq_dirs for p in d.rglob("*.yml"))
    documents = sum(
        sum(1 for doc in yaml.load_all(p.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) if doc is not None)
        for p in files
    )

    started = time.perf_counter()
    report = load_rules(sigmahq_dirs)
    seconds = time.perf_counter() - started

    counts = report.counts()
    total = sum(counts.values())
    correlations = sum(1 for e in report.entries if e.kind is RuleKind.CORRELATION)
    loaded_share = counts[RuleStatus.LOADED] / (total - correlations)
    print(f"\nSigmaHQ: {report.summary()} in {seconds:.1f}s; loaded share of non-correlation rules {loaded_share:.2%}")
    for status in (RuleStatus.UNSUPPORTED, RuleStatus.INVALID):
        for reason, count in report.reasons(status).most_common(10):
            print(f"  {status.value:11} {count:5}  {reason}")
    unmapped = Counter(e.compiled.logsource for e in report.loaded if e.compiled and e.unmapped_fields)
    print(f"  loaded rules reading fields outside the CitySOC schema: {sum(unmapped.values())}, most in "
          + ", ".join(f"{'/'.join(filter(None, key))} ({n})" for key, n in unmapped.most_common(6)))

    assert [Path(f.path) for f in report.files] == files
    assert total == documents == len(files)
    assert loaded_share >= 0.99
    assert seconds < 60
    windows = [e.compiled for e in report.loaded if e.compiled and e.compiled.logsource.product == "windows"]
    assert len(windows) > 2000
    assert all(lookup(name) is not None for rule in windows for name in rule.fields_used)
    rules = RuleSet(compile_collection(report))  # ids are unique across the three packs
    assert len(rules) == counts[RuleStatus.LOADED]


def test_sigmahq_rule_fires_on_a_sysmon_event(sigmahq_dirs: list[Path]) -> None:
    rules = RuleSet(compile_collection(load_rules(sigmahq_dirs[0] / "windows" / "process_creation")))
    mimikatz = event(fields={
        "event.dataset": "windows.sysmon",
        "winlog.event_id": "1",
        "process.executable": "C:\\Users\\Public\\m.exe",
        "process.command_line": "m.exe privilege::debug sekurlsa::logonpasswords exit",
    })
    notepad = event(fields={
        "event.dataset": "windows.sysmon",
        "winlog.event_id": "1",
        "process.executable": "C:\\Windows\\notepad.exe",
        "process.command_line": "notepad.exe C:\\notes.txt",
    })
    titles = {r.title for r in rules.match(mimikatz)}
    assert "HackTool - Mimikatz Execution" in titles
    assert rules.match(notepad) == []


# ------------------------------------------------------------------ our own pack


def test_citysoc_rules_load_and_the_correlation_is_kept() -> None:
    report = load_rules(OUR_RULES)
    assert {Path(f.path).name for f in report.files} == {p.name for p in OUR_RULES.rglob("*.yml")}
    assert report.invalid == ()
    assert all(e.unmapped_fields == () for e in report.loaded)
    correlations = [e for e in report.entries if e.kind is RuleKind.CORRELATION]
    assert all(c.status is RuleStatus.UNSUPPORTED and c.reason == CORRELATION_REASON for c in correlations)
    (camera,) = [c for c in correlations if c.title == "Camera Credential Brute Force"]
    assert camera.location == Location(str(OUR_RULES / "iot" / "camera_login_failure.yml"), 23)
    assert "Camera Credential Brute Force" in [c.title for c in report.correlations]
    # the loader leaves correlations to detections.pack; every other document is a loaded rule
    assert len(report.loaded) == len(report.entries) - len(correlations)


def test_citysoc_rule_fires_through_the_rule_set() -> None:
    rules = RuleSet(compile_collection(load_rules(OUR_RULES)))
    write_from_it = event(fields={
        "event.dataset": "zeek.modbus", "ot.protocol": "modbus", "ot.function": "write_single_register",
        "source.ip": "10.20.4.8",
    })
    write_from_eng = event(fields={
        "event.dataset": "zeek.modbus", "ot.protocol": "modbus", "ot.function": "write_single_register",
        "source.ip": "10.30.9.8",
    })
    assert [r.title for r in rules.match(write_from_it)] == ["Modbus Write From a Host Outside the Engineering Network"]
    assert rules.match(write_from_eng) == []


# ------------------------------------------------------------------ broken files


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yml", GOOD_RULE.replace("    service: camera", "    service: [camera"))
    report = load_rules(path)
    (entry,) = report.entries
    assert entry.status is RuleStatus.INVALID
    assert entry.kind is RuleKind.FILE
    assert entry.location.path == str(path)
    assert entry.location.line == 7
    assert entry.reason is not None and entry.reason.startswith("YAML syntax error")


def test_unknown_modifier_points_at_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "modifier.yml", GOOD_RULE.replace("event.action:", "event.action|containz:"))
    (entry,) = load_rules(path).entries
    assert entry.status is RuleStatus.INVALID
    assert entry.location == Location(str(path), 9)
    assert entry.reason == "Unknown modifier 'containz'"


def test_undefined_detection_in_condition_points_at_the_condition(tmp_path: Path) -> None:
    text = GOOD_RULE.replace("condition: selection", "condition: selection and not filter")
    path = write(tmp_path, "condition.yml", text)
    (entry,) = load_rules(path).entries
    assert entry.status is RuleStatus.INVALID
    assert entry.location == Location(str(path), 10)
    assert entry.reason is not None and "filter" in entry.reason


def test_bad_metadata_points_at_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "level.yml", GOOD_RULE.replace("level: medium", "level: severe"))
    (entry,) = load_rules(path).entries
    assert entry.status is RuleStatus.INVALID
    assert entry.location == Location(str(path), 11)
    assert entry.reason == "'severe' is not a valid Sigma rule level"
    assert entry.title == "Camera Firmware Update"


def test_duplicate_key_is_invalid_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yml", GOOD_RULE + "level: high\n")
    (entry,) = load_rules(path).entries
    assert entry.status is RuleStatus.INVALID
    assert entry.location == Location(str(path), 12)
    assert entry.reason is not None and "duplicate key 'level'" in entry.reason


def test_duplicate_rule_id_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a/first.yml", GOOD_RULE)
    write(tmp_path, "b/second.yml", GOOD_RULE.replace("Camera Firmware Update", "Camera Firmware Copy"))
    report = load_rules(tmp_path)
    assert [e.status for e in report.entries] == [RuleStatus.LOADED, RuleStatus.INVALID]
    rule_id = "3c7e9d21-6a4f-4f1b-8e2d-9b0a5c6d7e04"
    assert report.invalid[0].reason == f"duplicate rule id {rule_id}, first used at {first}:1"


def test_non_mapping_document_and_empty_file(tmp_path: Path) -> None:
    write(tmp_path, "list.yml", "- title: not a rule\n")
    write(tmp_path, "empty.yaml", "# nothing here\n")
    report = load_rules(tmp_path)
    reasons = {Path(e.location.path).name: e.reason for e in report.entries}
    assert report.counts()[RuleStatus.INVALID] == 2
    assert reasons == {
        "empty.yaml": "the file holds no YAML document",
        "list.yml": "a Sigma rule is a YAML mapping, this document is a list",
    }


def test_multi_document_file_reports_each_document(tmp_path: Path) -> None:
    second = GOOD_RULE.replace("3c7e9d21-6a4f-4f1b-8e2d-9b0a5c6d7e04", "1b0d6a1e-2f59-4a51-9d3e-7c4b8a6f5e21")
    path = write(tmp_path, "two.yml", GOOD_RULE + "---\n" + second.replace("level: medium", "level: nope"))
    report = load_rules(path)
    assert [(e.status, e.location.line) for e in report.entries] == [
        (RuleStatus.LOADED, 1),
        (RuleStatus.INVALID, 23),
    ]


def test_unmapped_fields_are_listed(tmp_path: Path) -> None:
    text = GOOD_RULE.replace("product: citysoc\n    service: camera", "product: aws\n    service: cloudtrail")
    path = write(tmp_path, "aws.yml", text.replace("event.action: firmware_update", "eventSource: iam.amazonaws.com"))
    (entry,) = load_rules(path).entries
    assert entry.status is RuleStatus.LOADED
    assert entry.unmapped_fields == ("eventSource",)


def test_expand_placeholder_is_unsupported(tmp_path: Path) -> None:
    path = write(tmp_path, "expand.yml", GOOD_RULE.replace("event.action: firmware_update",
                                                           "host.name|expand: '%camera_hosts%'"))
    (entry,) = load_rules(path).entries
    assert entry.status is RuleStatus.UNSUPPORTED
    assert entry.reason == (
        "value placeholder %camera_hosts% (expand modifier) has no value list in the CitySOC pipeline"
    )


def test_collect_errors_false_raises_the_first_invalid_with_location(tmp_path: Path) -> None:
    path = write(tmp_path, "level.yml", GOOD_RULE.replace("level: medium", "level: severe"))
    with pytest.raises(SigmaLoadError, match=rf"^{path}:11: 'severe' is not a valid Sigma rule level$"):
        load_rules(path, collect_errors=False)


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(SigmaLoadError, match="no such rule file or directory"):
        load_rules(tmp_path / "nowhere")


def test_find_rule_files_recurses_and_skips_hidden_folders(tmp_path: Path) -> None:
    keep = [write(tmp_path, "a/x.yml", GOOD_RULE), write(tmp_path, "b/c/y.yaml", GOOD_RULE)]
    write(tmp_path, ".github/workflow.yml", "on: push\n")
    write(tmp_path, "a/readme.md", "# rules\n")
    assert find_rule_files(tmp_path) == keep


def test_load_rule_text() -> None:
    report = load_rule_text(GOOD_RULE, origin="console:rule-editor")
    (entry,) = report.entries
    assert entry.status is RuleStatus.LOADED
    assert entry.location == Location("console:rule-editor", 1)
    (compiled,) = compile_collection(report)
    assert compiled.match(event(fields={"event.action": "firmware_update"}))
    assert not compiled.match(event(fields={"event.action": "login"}))

    with pytest.raises(SigmaLoadError, match=r"^console:rule-editor:7: YAML syntax error"):
        load_rule_text(GOOD_RULE.replace("service: camera", "service: [camera"), "console:rule-editor",
                       collect_errors=False)
