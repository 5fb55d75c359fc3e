"""The city's system register (asset inventory) and the enricher that uses it.

Every information system and device has an owning agency, a sector, a domain
(IT/OT/IoT), a criticality and its Vietnamese information-system security
level (1-5).  Events are matched to an asset by device id, host name or IP
address, most specific first, and get the ``asset.*`` fields, so incidents
show who owns what was hit and how critical it is.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from store.event import Event

DOMAINS = ("IT", "OT", "IoT")
CRITICALITIES = ("low", "medium", "high", "critical")


class RegisterError(Exception):
    """An asset register entry or file is invalid; the message says which and where."""


@dataclass(frozen=True)
class Asset:
    id: str
    name: str
    agency: str
    sector: str
    domain: str
    security_level: int
    criticality: str = "medium"
    area: str = ""
    layer: str = "infrastructure"
    ips: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    device_ids: tuple[str, ...] = ()
    system: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise RegisterError("asset without id")
        if self.domain not in DOMAINS:
            raise RegisterError(f"asset {self.id}: domain {self.domain!r} is not one of {', '.join(DOMAINS)}")
        if not isinstance(self.security_level, int) or not 1 <= self.security_level <= 5:
            raise RegisterError(f"asset {self.id}: security_level must be an integer 1-5, got {self.security_level!r}")
        if self.criticality not in CRITICALITIES:
            raise RegisterError(f"asset {self.id}: criticality {self.criticality!r} is not one of {CRITICALITIES}")
        for ip in self.ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError as exc:
                raise RegisterError(f"asset {self.id}: {ip!r} is not an IP address") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> Asset:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        args: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        for key in ("ips", "hostnames", "device_ids"):
            value = args.get(key, ())
            args[key] = tuple(value.split() if isinstance(value, str) else value)
        try:
            return cls(**args, extra=extra)
        except TypeError as exc:
            raise RegisterError(f"{where}: {exc}") from exc
        except RegisterError as exc:
            raise RegisterError(f"{where}: {exc}" if where else str(exc)) from exc

    def fields(self) -> dict[str, str | int]:
        return {
            "asset.id": self.id,
            "asset.name": self.name,
            "asset.agency": self.agency,
            "asset.sector": self.sector,
            "asset.domain": self.domain,
            "asset.security_level": self.security_level,
            "asset.criticality": self.criticality,
            "asset.area": self.area,
        }


class AssetRegister:
    """Assets indexed by their network identifiers."""

    def __init__(self, assets: Iterable[Asset] = ()) -> None:
        self._assets: dict[str, Asset] = {}
        self._by_key: dict[tuple[str, str], Asset] = {}
        for asset in assets:
            self.add(asset)

    def add(self, asset: Asset) -> None:
        if asset.id in self._assets:
            raise RegisterError(f"asset id {asset.id!r} is registered twice")
        self._assets[asset.id] = asset
        for kind, values in (("ip", asset.ips), ("host", asset.hostnames), ("device", asset.device_ids)):
            for value in values:
                key = (kind, value.lower())
                other = self._by_key.get(key)
                if other is not None:
                    raise RegisterError(f"{kind} {value!r} belongs to both {other.id!r} and {asset.id!r}")
                self._by_key[key] = asset

    def __iter__(self) -> Iterator[Asset]:
        return iter(self._assets.values())

    def __len__(self) -> int:
        return len(self._assets)

    def get(self, asset_id: str) -> Asset:
        try:
            return self._assets[asset_id]
        except KeyError:
            raise RegisterError(f"no asset {asset_id!r} in the register") from None

    def by_ip(self, ip: str) -> Asset | None:
        return self._by_key.get(("ip", ip.lower()))

    def by_host(self, host: str) -> Asset | None:
        return self._by_key.get(("host", host.lower()))

    def by_device(self, device_id: str) -> Asset | None:
        return self._by_key.get(("device", device_id.lower()))

    def match(self, event: Event) -> Asset | None:
        """The asset the event is about: the device, then the host, then the target address."""
        for field_name, finder in (
            ("iot.device.id", self.by_device),
            ("ot.plc.id", self.by_device),
            ("host.name", self.by_host),
            ("host.hostname", self.by_host),
            ("destination.ip", self.by_ip),
            ("host.ip", self.by_ip),
            ("source.ip", self.by_ip),
        ):
            value = event.get(field_name)
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, str):
                    asset = finder(item)
                    if asset is not None:
                        return asset
        return None

    # files -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> AssetRegister:
        """Load a YAML or JSON register: a list of assets, or ``{"assets": [...]}``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise RegisterError(f"{path}: cannot read asset register: {exc}") from exc
        rows = data.get("assets") if isinstance(data, Mapping) else data
        if not isinstance(rows, list):
            raise RegisterError(f"{path}: expected a list of assets")
        register = cls()
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise RegisterError(f"{path}: asset #{i + 1} is not a mapping")
            register.add(Asset.from_dict(row, where=f"{path}: asset #{i + 1}"))
        return register

    def dump(self, path: str | Path) -> None:
        rows = []
        for asset in self:
            row = asdict(asset)
            row.update(row.pop("extra"))
            rows.append(row)
        Path(path).write_text(json.dumps({"assets": rows}, indent=2, ensure_ascii=False), encoding="utf-8")


class AssetEnricher:
    """Adds ``asset.*`` fields to events (implements collectors.pipeline.Enricher)."""

    def __init__(self, register: AssetRegister) -> None:
        self.register = register

    def enrich(self, event: Event) -> Event:
        asset = self.register.match(event)
        if asset is None:
            return event
        return event.with_fields(asset.fields())
