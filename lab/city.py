"""The lab city: districts, agencies, networks and systems with their devices, loaded from YAML.

The city file (``lab/data/city.yml``) holds system-register rows (``assets``) plus
the city's districts, agencies and network ranges.  Loading checks every row
against them -- an asset in an unknown district, of an unknown agency or with an
address outside every declared network is an error with its location -- and
collects *all* errors, so one run of ``citysoc lab city --check`` lists them.
The telemetry generators find devices by their ``role`` (``camera``, ``plc-s7``,
``windows-desktop`` ...), kept in the asset's ``extra`` mapping.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from enrichment.assets import Asset, AssetRegister, RegisterError

CITY_FILE = Path(__file__).parent / "data" / "city.yml"


class CityError(Exception):
    """The city file is unusable; the message lists every problem with its location."""


@dataclass(frozen=True)
class City:
    name: str
    districts: tuple[str, ...]
    agencies: tuple[str, ...]
    networks: Mapping[str, ipaddress.IPv4Network]
    register: AssetRegister

    def role(self, role: str) -> list[Asset]:
        """Assets of one role, in file order (the generators depend on a stable order)."""
        return [a for a in self.register if a.extra.get("role") == role]

    def asset(self, asset_id: str) -> Asset:
        return self.register.get(asset_id)

    def hosts(self, role: str) -> list[tuple[str, str]]:
        """(hostname, address) pairs of every host of a role."""
        out: list[tuple[str, str]] = []
        for asset in self.role(role):
            out.extend(zip(asset.hostnames, asset.ips, strict=False))
        return out

    def devices(self, role: str) -> list[tuple[Asset, str, str | None]]:
        """(asset, device id, address or None) of every device of a role."""
        out: list[tuple[Asset, str, str | None]] = []
        for asset in self.role(role):
            for i, device in enumerate(asset.device_ids):
                out.append((asset, device, asset.ips[i] if i < len(asset.ips) else None))
        return out

    def network_of(self, ip: str) -> str | None:
        addr = ipaddress.ip_address(ip)
        for name, net in self.networks.items():
            if addr in net:
                return name
        return None

    def summary(self) -> dict[str, Any]:
        sectors: dict[str, int] = {}
        for asset in self.register:
            sectors[asset.sector] = sectors.get(asset.sector, 0) + 1
        return {
            "city": self.name,
            "districts": len(self.districts),
            "agencies": len(self.agencies),
            "systems": len({a.system for a in self.register if a.system}),
            "assets": len(self.register),
            "devices": sum(max(len(a.device_ids), len(a.hostnames), 1) for a in self.register),
            "sectors": dict(sorted(sectors.items())),
        }


def load_city(path: Path = CITY_FILE) -> City:
    """Load and check the city file; every problem is reported at once."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CityError(f"{path}: cannot read the city file: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("assets"), list):
        raise CityError(f"{path}: expected a mapping with an 'assets' list")
    errors: list[str] = []
    districts = tuple(str(d) for d in data.get("districts") or ())
    agencies = tuple(str(a) for a in data.get("agencies") or ())
    networks: dict[str, ipaddress.IPv4Network] = {}
    for name, cidr in (data.get("networks") or {}).items():
        try:
            networks[str(name)] = ipaddress.IPv4Network(str(cidr))
        except ValueError as exc:
            errors.append(f"{path}: networks.{name}: {exc}")
    register = AssetRegister()
    for index, row in enumerate(data["assets"]):
        label = row.get("id") if isinstance(row, Mapping) else repr(row)
        where = f"{path}: assets[{index}] ({label})"
        if not isinstance(row, Mapping):
            errors.append(f"{where}: not a mapping")
            continue
        try:
            asset = Asset.from_dict(row, where=where)
            register.add(asset)
        except RegisterError as exc:
            errors.append(str(exc) if str(exc).startswith(str(path)) else f"{where}: {exc}")
            continue
        if districts and asset.area not in districts:
            errors.append(f"{where}: area {asset.area!r} is not a district of the city ({', '.join(districts)})")
        if agencies and asset.agency not in agencies:
            errors.append(f"{where}: agency {asset.agency!r} is not listed under 'agencies'")
        for ip in asset.ips:
            addr = ipaddress.ip_address(ip)
            if networks and not any(addr in net for net in networks.values()):
                errors.append(f"{where}: address {ip} is in none of the city's networks")
        if not asset.extra.get("role"):
            errors.append(f"{where}: no 'role' (the generators need it)")
    if errors:
        raise CityError(f"{len(errors)} problem(s) in the city file:\n" + "\n".join(errors))
    return City(str(data.get("city") or path.stem), districts, agencies, networks, register)
