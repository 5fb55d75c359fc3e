from __future__ import annotations

from pathlib import Path

import pytest

from enrichment.intel.attack import AttackCatalog, configured_catalog, technique_ids
from enrichment.intel.errors import IntelError
from tests.helpers import shared


def test_ics_bundle_gives_names_tactics_and_mitigations() -> None:
    catalog = AttackCatalog()
    added = catalog.load(shared("attack-ics", "ics-attack-18.1.json"))
    assert added > 70  # ATT&CK for ICS v18 has about 80 live techniques
    t0836 = catalog.technique("t0836")
    assert t0836.name == "Modify Parameter"
    assert t0836.domain == "ics"
    assert "Impair Process Control" in t0836.tactics
    assert t0836.mitigations  # e.g. authorization enforcement


def test_coverage_lists_rules_per_technique_and_unknown_ids_from_tags() -> None:
    catalog = AttackCatalog()
    catalog.load(shared("attack-ics", "ics-attack-18.1.json"))
    rules = [("modbus-write", ["attack.ics", "attack.t0855", "attack.t0836"]), ("ssh", ["attack.t1110.003"])]
    matrix = catalog.coverage(rules)
    assert matrix["T0836"] == ["modbus-write"]
    assert matrix["T0803"] == []  # loaded but no rule covers it
    assert matrix["T1110.003"] == ["ssh"]  # enterprise bundle not loaded: fallback to the tag id
    assert not catalog.technique("T1110.003").known


def test_technique_ids_from_sigma_tags() -> None:
    assert technique_ids(["attack.t1110", "attack.credential_access", "attack.T1110", "cve.2021-1"]) == ["T1110"]


def test_bad_bundle_is_an_error_with_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "enterprise.json"
    bad.write_text('{"type": "bundle"}')
    with pytest.raises(IntelError, match=r"enterprise\.json"):
        AttackCatalog().load(bad)


def test_catalog_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSOC_ATTACK", str(shared("attack-ics", "ics-attack-18.1.json")))
    catalog = configured_catalog()
    assert [t.name for t in catalog.for_tags(["attack.t0836", "attack.t1110"])] == ["Modify Parameter", ""]
