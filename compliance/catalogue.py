"""The control catalogue: controls with their legal sources and how each is evidenced, loaded from YAML.

A catalogue file (``compliance/catalogue/*.yml``) has a name, a version, a scope (``system``: checked
per information system at its security level; ``city``: checked once for the city) and a list of
controls.  Every control cites its sources (document, article, clause, and per-level clauses where the
requirement repeats per level) and says whether the citation was verified against the public text
(``source_verified``) — an unverified citation is kept and flagged, never dropped or guessed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compliance.errors import CatalogueError

CATALOGUE_DIR = Path(__file__).parent / "catalogue"
GROUPS = ("management", "technical", "obligation", "maturity", "kpi")
SCOPES = ("system", "city")


class EvidenceType(enum.StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"
    NOT_COVERED = "not_covered"


@dataclass(frozen=True)
class Source:
    document: str
    article: str
    clause: str = ""
    by_level: Mapping[int, str] = field(default_factory=dict)
    source_verified: bool = False
    note: str = ""

    def cite(self, level: int | None = None) -> str:
        """The citation, with the clause that applies at ``level`` when the source gives one per level."""
        article = self.by_level.get(level, self.article) if level is not None else self.article
        if level is not None and level in self.by_level and not article.startswith(("mục", "Điều")):
            article = f"mục {article}"
        parts = [self.document, article] + ([self.clause] if self.clause else [])
        return ", ".join(parts)


@dataclass(frozen=True)
class EvidenceSpec:
    type: EvidenceType
    data: str
    query: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Control:
    id: str
    title_vi: str
    title_en: str
    group: str
    scope: str
    catalogue: str
    version: str
    sources: tuple[Source, ...]
    evidence: EvidenceSpec
    levels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise CatalogueError(f"control {self.id}: group {self.group!r} is not one of {', '.join(GROUPS)}")
        if self.scope == "system" and not self.levels:
            raise CatalogueError(f"control {self.id}: a system control needs its security levels")
        if any(level not in range(1, 6) for level in self.levels):
            raise CatalogueError(f"control {self.id}: levels must be 1-5, got {list(self.levels)}")
        if not self.sources:
            raise CatalogueError(f"control {self.id}: no legal source; cite one (source_verified: false if unread)")
        if (self.evidence.type is EvidenceType.AUTOMATIC) != bool(self.evidence.query):
            raise CatalogueError(f"control {self.id}: an automatic control needs a query, others none")

    @property
    def source_verified(self) -> bool:
        return all(source.source_verified for source in self.sources)

    def title(self, lang: str) -> str:
        return self.title_vi if lang == "vi" else self.title_en

    def applies_to(self, level: int) -> bool:
        return level in self.levels


@dataclass(frozen=True)
class Catalogue:
    controls: tuple[Control, ...]
    versions: Mapping[str, str]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for control in self.controls:
            if control.id in seen:
                raise CatalogueError(f"control id {control.id!r} is defined twice")
            seen.add(control.id)

    def get(self, control_id: str) -> Control:
        for control in self.controls:
            if control.id == control_id:
                return control
        raise CatalogueError(f"no control {control_id!r} in the catalogue")

    def for_level(self, level: int) -> list[Control]:
        return [c for c in self.controls if c.scope == "system" and c.applies_to(level)]

    def city(self) -> list[Control]:
        return [c for c in self.controls if c.scope == "city"]

    @property
    def version(self) -> str:
        return ";".join(f"{name}={version}" for name, version in sorted(self.versions.items()))


def _source(raw: Any, where: str) -> Source:
    if not isinstance(raw, Mapping) or not raw.get("document") or not raw.get("article"):
        raise CatalogueError(f"{where}: a source needs 'document' and 'article'")
    by_level = raw.get("by_level") or {}
    if not isinstance(by_level, Mapping) or not all(isinstance(k, int) for k in by_level):
        raise CatalogueError(f"{where}: by_level maps security levels (1-5) to clauses")
    verified = raw.get("source_verified")
    if not isinstance(verified, bool):
        raise CatalogueError(f"{where}: say source_verified: true or false for every source")
    if not verified and not raw.get("note"):
        raise CatalogueError(f"{where}: an unverified source needs a note saying what was not verified")
    return Source(
        document=str(raw["document"]),
        article=str(raw["article"]),
        clause=str(raw.get("clause") or ""),
        by_level={int(k): str(v) for k, v in by_level.items()},
        source_verified=verified,
        note=str(raw.get("note") or ""),
    )


def _control(raw: Any, where: str, name: str, version: str, scope: str) -> Control:
    if not isinstance(raw, Mapping) or not raw.get("id"):
        raise CatalogueError(f"{where}: a control is a mapping with an 'id'")
    where = f"{where} ({raw['id']})"
    title = raw.get("title")
    if not isinstance(title, Mapping) or not title.get("vi") or not title.get("en"):
        raise CatalogueError(f"{where}: title needs 'vi' and 'en'")
    ev = raw.get("evidence")
    if not isinstance(ev, Mapping):
        raise CatalogueError(f"{where}: no evidence section")
    try:
        etype = EvidenceType(str(ev.get("type")))
    except ValueError:
        raise CatalogueError(f"{where}: evidence type must be one of {[t.value for t in EvidenceType]}") from None
    sources = raw.get("sources")
    if not isinstance(sources, list):
        raise CatalogueError(f"{where}: sources must be a list")
    try:
        return Control(
            id=str(raw["id"]),
            title_vi=str(title["vi"]),
            title_en=str(title["en"]),
            group=str(raw.get("group")),
            scope=scope,
            catalogue=name,
            version=version,
            sources=tuple(_source(s, f"{where} source #{i + 1}") for i, s in enumerate(sources)),
            evidence=EvidenceSpec(etype, str(ev.get("data") or ""), ev.get("query"), dict(ev.get("params") or {})),
            levels=tuple(int(level) for level in raw.get("levels") or ()),
        )
    except CatalogueError as exc:
        raise CatalogueError(f"{where}: {exc}") from exc


def load_file(path: Path, errors: list[str] | None = None) -> tuple[str, str, list[Control]]:
    """One catalogue file; with ``errors`` given, bad controls are described there and skipped."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: cannot read the catalogue: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("controls"), list):
        raise CatalogueError(f"{path}: expected a mapping with 'catalogue', 'version', 'scope' and 'controls'")
    name, version, scope = str(data.get("catalogue") or path.stem), str(data.get("version") or ""), data.get("scope")
    if not version or scope not in SCOPES:
        raise CatalogueError(f"{path}: needs a version and a scope ({' or '.join(SCOPES)})")
    controls = []
    for i, raw in enumerate(data["controls"]):
        try:
            controls.append(_control(raw, f"{path}: control #{i + 1}", name, version, str(scope)))
        except CatalogueError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return name, version, controls


def load_catalogue(paths: Iterable[Path] | None = None, errors: list[str] | None = None) -> Catalogue:
    """The controls of every ``*.yml`` under ``paths`` (default: the built-in catalogue)."""
    files: list[Path] = []
    for path in paths if paths is not None else [CATALOGUE_DIR]:
        files.extend(sorted(path.glob("*.yml")) if path.is_dir() else [path])
    controls: list[Control] = []
    versions: dict[str, str] = {}
    for file in files:
        name, version, found = load_file(file, errors)
        if name in versions:
            raise CatalogueError(f"{file}: catalogue {name!r} is defined twice")
        versions[name] = version
        controls.extend(found)
    return Catalogue(tuple(controls), versions)


def queries_used(controls: Sequence[Control]) -> set[str]:
    return {c.evidence.query for c in controls if c.evidence.query}


def markdown(catalogue: Catalogue) -> str:
    """The control table of docs/compliance.md: every control, its legal source and how it is evidenced."""
    lines = []
    for scope, heading in (("system", "Per information system"), ("city", "City-wide")):
        lines += [
            f"### {heading}",
            "",
            "| control | title | levels | legal source | verified | evidence |",
            "|---|---|---|---|---|---|",
        ]
        for c in (c for c in catalogue.controls if c.scope == scope):
            sources = "<br>".join(
                s.cite()
                + (
                    f" (per level: {', '.join(f'{k}: {v}' for k, v in sorted(s.by_level.items()))})"
                    if s.by_level
                    else ""
                )
                + (f" — *{s.note}*" if s.note else "")
                for s in c.sources
            )
            how = c.evidence.type.value.replace("_", " ")
            if c.evidence.query:
                how += f": `{c.evidence.query}` — {c.evidence.data}"
            else:
                how += f" — {c.evidence.data}"
            levels = ", ".join(map(str, c.levels)) or "city"
            verified = "yes" if c.source_verified else "**no**"
            lines.append(f"| `{c.id}` | {c.title_en} / {c.title_vi} | {levels} | {sources} | {verified} | {how} |")
        lines.append("")
    return "\n".join(lines)
