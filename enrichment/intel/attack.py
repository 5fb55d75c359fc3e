"""MITRE ATT&CK (Enterprise and ICS) from its STIX bundles: techniques, tactics, mitigations, rule coverage.

The ICS bundle ships beside the repo (``../shared/data/attack-ics/``); the
Enterprise bundle is too large to ship, so it is loaded from a file the user
supplies.  Without a bundle, technique ids still come from the rules' Sigma
tags (``attack.t1110.001``) so coverage works, only without names — such
techniques are marked ``known=False`` rather than given invented names.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enrichment.intel.errors import IntelError

_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.I)


@dataclass(frozen=True)
class Technique:
    id: str
    name: str
    domain: str
    tactics: tuple[str, ...] = ()
    mitigations: tuple[str, ...] = ()
    known: bool = True


@dataclass
class AttackCatalog:
    """Techniques by ATT&CK id (``T0836``, ``T1110.001``)."""

    techniques: dict[str, Technique] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def load(self, path: str | Path) -> int:
        """Add the techniques of one ATT&CK STIX bundle; returns how many were added."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IntelError(f"{path}: cannot read ATT&CK bundle: {exc}") from exc
        objects = doc.get("objects") if isinstance(doc, Mapping) else None
        if not isinstance(objects, list):
            raise IntelError(f"{path}: not a STIX bundle with an 'objects' list")
        # revoked and deprecated techniques stay in the bundle for history; they are not shown
        live = [
            o for o in objects if isinstance(o, Mapping) and not o.get("revoked") and not o.get("x_mitre_deprecated")
        ]
        tactic_names = {o["x_mitre_shortname"]: o["name"] for o in live if o.get("type") == "x-mitre-tactic"}
        mitigation_names = {o["id"]: o["name"] for o in live if o.get("type") == "course-of-action"}
        mitigations: dict[str, list[str]] = {}
        for rel in live:
            if rel.get("type") == "relationship" and rel.get("relationship_type") == "mitigates":
                name = mitigation_names.get(rel.get("source_ref", ""))
                if name:
                    mitigations.setdefault(rel["target_ref"], []).append(name)
        added = 0
        for obj in live:
            if obj.get("type") != "attack-pattern":
                continue
            ext = _external_id(obj)
            if ext is None:
                continue
            phases = obj.get("kill_chain_phases") or []
            domain = str(phases[0].get("kill_chain_name", "")) if phases else ""
            self.techniques[ext] = Technique(
                id=ext,
                name=str(obj.get("name", "")),
                domain="ics" if "ics" in domain else "enterprise" if domain else "",
                tactics=tuple(tactic_names.get(p.get("phase_name", ""), p.get("phase_name", "")) for p in phases),
                mitigations=tuple(sorted(mitigations.get(obj["id"], []))),
            )
            added += 1
        self.sources.append(str(path))
        return added

    def technique(self, technique_id: str) -> Technique:
        """The technique, or a placeholder marked unknown (id only) when no loaded bundle has it."""
        tid = technique_id.upper()
        return self.techniques.get(tid) or Technique(tid, "", "", known=False)

    def for_tags(self, tags: Iterable[str]) -> list[Technique]:
        """Techniques named by Sigma tags (``attack.t0836``), for showing on incidents."""
        return [self.technique(tid) for tid in technique_ids(tags)]

    def coverage(self, rules: Iterable[tuple[str, Iterable[str]]]) -> dict[str, list[str]]:
        """Technique id -> ids of the rules tagged with it; every loaded technique appears (maybe uncovered)."""
        matrix: dict[str, list[str]] = {tid: [] for tid in sorted(self.techniques)}
        for rule_id, tags in rules:
            for tid in technique_ids(tags):
                matrix.setdefault(tid, []).append(rule_id)
        return matrix


def configured_catalog(paths: Iterable[str | Path] | None = None) -> AttackCatalog:
    """A catalog of the given bundles, or of ``CITYSOC_ATTACK`` (paths separated by ``os.pathsep``)."""
    if paths is None:
        paths = [p for p in os.environ.get("CITYSOC_ATTACK", "").split(os.pathsep) if p]
    catalog = AttackCatalog()
    for path in paths:
        catalog.load(path)
    return catalog


def technique_ids(tags: Iterable[str]) -> list[str]:
    """ATT&CK technique ids in Sigma tags, upper-case, in order, without duplicates."""
    out: dict[str, None] = {}
    for tag in tags:
        m = _TAG.match(tag)
        if m:
            out[m.group(1).upper()] = None
    return list(out)


def _external_id(obj: Mapping[str, Any]) -> str | None:
    for ref in obj.get("external_references") or ():
        if ref.get("source_name") == "mitre-attack" and ref.get("external_id"):
            return str(ref["external_id"])
    return None
