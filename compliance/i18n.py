"""Report labels in Vietnamese and English, from ``compliance/i18n/<lang>.yml``.

Every label a report shows comes from these files; a key missing from a language is an error
(:class:`compliance.errors.ComplianceError`), so an untranslated label cannot slip into a report.
Arguments are formatted into the text with ``str.format``; the renderers escape the result.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from compliance.errors import ComplianceError

I18N_DIR = Path(__file__).parent / "i18n"
LANGUAGES = ("vi", "en")


class _Args(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        raise ComplianceError(f"translation argument {key!r} is missing")


@functools.cache
def labels(lang: str) -> Mapping[str, str]:
    if lang not in LANGUAGES:
        raise ComplianceError(f"language {lang!r} is not one of {', '.join(LANGUAGES)}")
    path = I18N_DIR / f"{lang}.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ComplianceError(f"{path}: cannot read translations: {exc}") from exc
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise ComplianceError(f"{path}: expected a flat mapping of keys to texts")
    return {str(k): str(v) for k, v in data.items()}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


class Translator:
    """``t(key, **args)`` for one language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.labels = labels(lang)

    def __call__(self, key: str, **args: Any) -> str:
        try:
            text = self.labels[key]
        except KeyError:
            raise ComplianceError(
                f"label {key!r} has no {self.lang} translation in {I18N_DIR / self.lang}.yml"
            ) from None
        return text.format_map(_Args(args)) if args else text
