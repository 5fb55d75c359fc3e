"""Every label of every report exists in Vietnamese and English; no untranslated key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compliance.engine import Assessment
from compliance.errors import ComplianceError
from compliance.i18n import Translator, labels, placeholders
from compliance.render import to_html, to_pdf
from compliance.reports import KINDS, build

SOURCES = Path(__file__).resolve().parents[2] / "compliance"


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    vi, en = labels("vi"), labels("en")
    assert set(vi) == set(en)
    for key in vi:
        assert placeholders(vi[key]) == placeholders(en[key]), key


def test_every_key_used_in_code_and_templates_is_translated() -> None:
    used: set[str] = set()
    console = SOURCES.parent / "console"
    files = [
        *SOURCES.glob("*.py"),
        *(SOURCES / "templates").glob("*.html"),
        console / "compliance_views.py",
        *(console / "templates").glob("compliance_*.html"),
    ]
    for path in files:
        used |= set(
            re.findall(
                r"""["']((?:reason|report|col|city|chart|system|status|evidence|maturity|source|unit|console)"""
                r"""\.[a-z_.\-]+[a-z])["']""",
                path.read_text(encoding="utf-8"),
            )
        )
    assert len(used) > 40
    missing = sorted(k for k in used if k not in labels("en") and not k.endswith((".py", ".html", ".pdf", ".yml")))
    assert missing == []


@pytest.mark.parametrize("lang", ["vi", "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_report_renders_in_both_languages(assessment: Assessment, kind: str, lang: str) -> None:
    data = build(kind, assessment, lang, "water-scada" if kind == "system" else None)
    html = to_html(data, "RPT-X")
    assert html.startswith("<!doctype html>") and f'lang="{lang}"' in html
    assert to_pdf(data, "RPT-X").startswith(b"%PDF")


def test_missing_key_is_an_error() -> None:
    with pytest.raises(ComplianceError, match="has no en translation"):
        Translator("en")("reason.does_not_exist")
    with pytest.raises(ComplianceError, match="not one of"):
        Translator("fr")
