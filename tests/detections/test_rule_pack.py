"""Every rule of the smart-city pack, checked like detection-rules checks its pack."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from detections.correlation import Correlator
from detections.engine import DetectionEngine
from detections.incidents import IncidentManager
from detections.pack import RULES_DIR, LoadedRules, load_rules
from store.event import Event, parse_ts
from store.schema import lookup
from store.sqlite import SQLiteStore
from tests.helpers import REPO, event

SAMPLES: dict[str, dict[str, list[list[dict[str, Any]]]]] = yaml.safe_load(
    (REPO / "tests" / "data" / "detections" / "pack_samples.yml").read_text(encoding="utf-8")
)
TAG = re.compile(r"^attack\.(t\d{4}(\.\d{3})?|[a-z]+(-[a-z]+)*)$")


@pytest.fixture(scope="module")
def pack() -> LoadedRules:
    return load_rules([RULES_DIR])


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(RULES_DIR.rglob("*.yml")):
        docs.extend((path, doc) for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")))
    return docs


def test_every_rule_loads(pack: LoadedRules) -> None:
    counts = pack.counts()
    assert counts == {"loaded": len(_documents()), "unsupported": 0, "invalid": 0}, pack.report.summary()


def test_ids_are_unique_uuids_and_metadata_complete() -> None:
    ids = [doc["id"] for _, doc in _documents()]
    assert len(ids) == len(set(ids))
    for path, doc in _documents():
        uuid.UUID(doc["id"])
        for key in ("title", "description", "level", "falsepositives", "tags", "author", "date"):
            assert doc.get(key), f"{path}: {doc.get('title')}: missing {key}"
        for tag in doc["tags"]:
            assert TAG.match(tag), f"{path}: bad tag {tag!r}"
        assert any(re.match(r"attack\.t\d{4}", t) for t in doc["tags"]), f"{path}: no ATT&CK technique"


def test_fields_are_in_the_schema(pack: LoadedRules) -> None:
    for rule in pack.compiled:
        for name in rule.fields_used:
            assert lookup(name) is not None, f"{rule.title}: field {name!r} is not in the event schema"
    for corr in pack.correlations:
        for name in corr.group_by or ():
            assert lookup(name) is not None, f"{corr.title}: group-by {name!r} not in schema"


def test_every_rule_has_samples() -> None:
    titles = {doc["title"] for _, doc in _documents()}
    assert titles == set(SAMPLES)
    for title, sample in SAMPLES.items():
        assert sample["positive"] and sample["negative"], title


def _fired(pack: LoadedRules, tmp_path: Path, events: list[dict[str, Any]]) -> set[str]:
    store = SQLiteStore(tmp_path / f"{uuid.uuid4().hex}.db")
    engine = DetectionEngine(store, pack.ruleset, IncidentManager(store), Correlator(pack.correlations), pack.names)
    fired: set[str] = set()
    for i, fields in enumerate(events):
        e = event(i * 10, fields, event_id=f"e{i}")
        if "@timestamp" in fields:  # samples of time-of-day rules carry their own time
            e = Event(id=e.id, timestamp=parse_ts(fields["@timestamp"]), fields=e.fields)
        store.put_events([e])
        fired |= {a.rule_title for a in engine.evaluate(e)}
        fired |= {r.title for r in pack.ruleset.match(e)}  # base rules that only feed correlations
    store.close()
    return fired


@pytest.mark.parametrize("title", sorted(SAMPLES))
def test_positive_samples_fire_and_negative_ones_do_not(pack: LoadedRules, tmp_path: Path, title: str) -> None:
    for sample in SAMPLES[title]["positive"]:
        assert title in _fired(pack, tmp_path, sample), f"{title} did not fire on {sample}"
    for sample in SAMPLES[title]["negative"]:
        assert title not in _fired(pack, tmp_path, sample), f"{title} fired on {sample}"


def test_correlation_window_expires(pack: LoadedRules, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "w.db")
    engine = DetectionEngine(store, pack.ruleset, IncidentManager(store), Correlator(pack.correlations), pack.names)
    fields = SAMPLES["Camera Credential Brute Force"]["positive"][0][0]
    titles = []
    for i in range(5):  # 5 failures, 2 minutes apart: never 5 inside 5 minutes
        e = event(i * 120, fields, event_id=f"w{i}")
        store.put_events([e])
        titles += [a.rule_title for a in engine.evaluate(e)]
    assert "Camera Credential Brute Force" not in titles
    assert timedelta(minutes=5).total_seconds() == 300
    store.close()


def test_ics_technique_tags_exist_in_attack_for_ics() -> None:
    import json

    from tests.helpers import shared

    bundle = json.loads((shared("attack-ics") / "ics-attack-18.1.json").read_text(encoding="utf-8"))
    known = {
        ref["external_id"].lower()
        for obj in bundle["objects"]
        if obj.get("type") == "attack-pattern" and not obj.get("revoked") and not obj.get("x_mitre_deprecated")
        for ref in obj.get("external_references", [])
        if re.match(r"T0\d{3}$", ref.get("external_id", ""))
    }
    tags = [tag for _, doc in _documents() for tag in doc["tags"]]
    used = {tag[len("attack.") :] for tag in tags if re.match(r"attack\.t0\d{3}$", tag)}
    assert used and used <= known, sorted(used - known)


def test_the_pack_has_at_least_40_rules() -> None:
    assert len(_documents()) >= 40
