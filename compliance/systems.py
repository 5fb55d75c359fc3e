"""Information systems as the security-level regime sees them, built from the system register.

The register (:mod:`enrichment.assets`) lists assets; assets that share a ``system`` value form one
information system (an asset without one is a system by itself).  A system's security level is the
highest level of its assets, and its register dates (approval, backup, restore test, risk assessment,
drill) are the latest any of its assets records — one backed-up database does not make the others
backed up, so controls that need every asset check the assets themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from enrichment.assets import Asset, AssetRegister


@dataclass(frozen=True)
class System:
    id: str
    name: str
    agency: str
    sector: str
    domain: str
    level: int
    assets: tuple[Asset, ...]

    @property
    def asset_ids(self) -> frozenset[str]:
        return frozenset(a.id for a in self.assets)

    def latest(self, field_name: str) -> date | None:
        """The latest date any asset of the system records in ``field_name`` (a register date field)."""
        values = [str(getattr(a, field_name)) for a in self.assets if getattr(a, field_name)]
        return max((date.fromisoformat(v) for v in values), default=None)

    def first_text(self, field_name: str) -> str:
        return next((str(getattr(a, field_name)) for a in self.assets if getattr(a, field_name)), "")


def systems(register: AssetRegister) -> list[System]:
    """The register's systems, ordered by id."""
    groups: dict[str, list[Asset]] = {}
    for asset in register:
        groups.setdefault(asset.system or asset.id, []).append(asset)
    out = []
    for key, assets in sorted(groups.items()):
        head = next((a for a in assets if a.id == key), assets[0])
        out.append(
            System(
                id=key,
                name=head.name if head.id == key else key,
                agency=head.agency,
                sector=head.sector,
                domain=head.domain,
                level=max(a.security_level for a in assets),
                assets=tuple(sorted(assets, key=lambda a: a.id)),
            )
        )
    return out
