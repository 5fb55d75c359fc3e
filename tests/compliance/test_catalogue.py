"""The control catalogue as data: every control cites a source and says how it is evidenced."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.catalogue import EvidenceType, load_catalogue
from compliance.errors import CatalogueError

REQUIRED = {
    "V.NS.20.01",
    "V.NS.20.02",
    "V.HS.19.05",
    "III.GT.05.03",
    "III.MT.11.02",
    "III.HSK.11.02",
    "III.HSK.11.03",
    "IV.QLK.13.02",
    "L3.N2.PN1.01",
    "KPI.DEV.CAMERAS",
    "KPI.DEV.SENSORS",
    "KPI.DEV.METERS",
    "D269.15",
    "D269.16",
    "D269.17",
    "D269.25",
    "D269.33",
}


def test_catalogue_covers_the_required_controls_and_levels() -> None:
    catalogue = load_catalogue()
    ids = {c.id for c in catalogue.controls}
    assert ids >= REQUIRED
    for level in range(1, 6):
        assert catalogue.for_level(level), level
    assert len(catalogue.for_level(5)) > len(catalogue.for_level(1))
    assert set(catalogue.versions) == {"security-levels", "city"}


def test_every_control_cites_and_flags_its_sources() -> None:
    for control in load_catalogue().controls:
        assert control.sources, control.id
        for source in control.sources:
            assert source.document and source.article, control.id
            assert source.source_verified or source.note, control.id
        assert control.evidence.data, control.id
        assert control.evidence.type in EvidenceType


def test_per_level_clause_is_cited() -> None:
    policy = load_catalogue().get("SL.M1.POLICY")
    assert policy.sources[0].cite(3) == "TCVN 11930:2017, mục 7.1.1"
    assert policy.sources[0].cite(1) == "TCVN 11930:2017, mục 5.1.1"


def test_bad_catalogue_errors_name_file_and_control(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "catalogue: bad\nversion: '1'\nscope: system\ncontrols:\n"
        "  - id: X.1\n    title: {vi: a, en: b}\n    levels: [3]\n    group: technical\n"
        "    sources: [{document: D, article: A, source_verified: false}]\n"
        "    evidence: {type: automatic, query: q, data: d}\n"
        "  - id: X.2\n    title: {vi: a, en: b}\n    levels: [9]\n    group: technical\n"
        "    sources: [{document: D, article: A, source_verified: true}]\n"
        "    evidence: {type: manual, data: d}\n",
        encoding="utf-8",
    )
    errors: list[str] = []
    catalogue = load_catalogue([bad], errors)
    assert catalogue.controls == ()
    assert len(errors) == 2
    assert f"{bad}: control #1 (X.1)" in errors[0] and "needs a note" in errors[0]
    assert "(X.2)" in errors[1] and "levels must be 1-5" in errors[1]
    with pytest.raises(CatalogueError, match=r"X\.1"):
        load_catalogue([bad])


def test_docs_list_every_control() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "compliance.md").read_text(encoding="utf-8")
    missing = [c.id for c in load_catalogue().controls if f"`{c.id}`" not in docs]
    assert missing == [], "regenerate the table with: citysoc report controls --markdown"
