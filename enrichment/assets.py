"""The city's system register (asset inventory) and the enricher that uses it.

Every information system and device has an owning agency, a sector, a domain
(IT/OT/IoT), a criticality and its Vietnamese information-system security
level (1-5).  Events are matched to an asset by device id, host name or IP
address, most specific first, and get the ``asset.*`` fields, so incidents
show who owns what was hit and how critical it is.

The register is read and written as YAML, JSON or CSV (list fields space- or
``;``-separated in CSV); loaders can collect every bad row with its line instead
of stopping at the first.  :func:`candidates` lists devices seen in stored
telemetry that the register does not know, for the register's keepers.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from store.base import Store
from store.event import Event

DOMAINS = ("IT", "OT", "IoT")
CRITICALITIES = ("low", "medium", "high", "critical")
LAYERS = ("infrastructure", "data", "platform", "application")
#: identifier fields holding several values
LIST_FIELDS = ("ips", "hostnames", "device_ids", "macs", "mqtt_client_ids")
#: status dates of the security-level regime (ISO dates, empty if never)
DATE_FIELDS = ("level_approved_on", "last_backup", "last_restore_test", "last_risk_assessment", "last_drill")


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
    macs: tuple[str, ...] = ()
    mqtt_client_ids: tuple[str, ...] = ()
    #: security-level approval: date and decision number of the approving authority
    level_approved_on: str = ""
    level_decision: str = ""
    last_backup: str = ""
    last_restore_test: str = ""
    last_risk_assessment: str = ""
    last_drill: str = ""
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
        if self.layer not in LAYERS:
            raise RegisterError(f"asset {self.id}: layer {self.layer!r} is not one of {', '.join(LAYERS)}")
        for ip in self.ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError as exc:
                raise RegisterError(f"asset {self.id}: {ip!r} is not an IP address") from exc
        for name in DATE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (date, datetime)):  # YAML gives dates as objects
                object.__setattr__(self, name, value.isoformat()[:10])
            elif value:
                try:
                    date.fromisoformat(str(value))
                except ValueError as exc:
                    raise RegisterError(f"asset {self.id}: {name} {value!r} is not a date (YYYY-MM-DD)") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> Asset:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        args: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        for key in LIST_FIELDS:
            value = args.get(key, ())
            args[key] = tuple(value.replace(";", " ").split() if isinstance(value, str) else value)
        level = args.get("security_level")
        if isinstance(level, str) and level.strip().isdigit():  # CSV cells are text
            args["security_level"] = int(level)
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
        keys = [((kind, value.lower()), value) for kind, value in _keys(asset)]
        # check every identifier before indexing any, so a refused asset leaves no trace
        for key, value in keys:
            other = self._by_key.get(key)
            if other is not None:
                raise RegisterError(f"{key[0]} {value!r} belongs to both {other.id!r} and {asset.id!r}")
        self._assets[asset.id] = asset
        for key, _value in keys:
            self._by_key[key] = asset

    def update(self, asset: Asset) -> None:
        """Replace the asset with the same id (its identifiers are re-indexed)."""
        old = self.get(asset.id)
        self.remove(asset.id)
        try:
            self.add(asset)
        except RegisterError:
            self.add(old)  # leave the register as it was
            raise

    def remove(self, asset_id: str) -> Asset:
        asset = self.get(asset_id)
        del self._assets[asset_id]
        for kind, value in _keys(asset):
            self._by_key.pop((kind, value.lower()), None)
        return asset

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

    def knows(self, kind: str, value: str) -> bool:
        return (kind, value.lower()) in self._by_key

    def match(self, event: Event) -> Asset | None:
        """The asset the event is about: the device, then the host, then the target address."""
        for field_name, finder in (
            ("iot.device.id", self.by_device),
            ("ot.plc.id", self.by_device),
            ("iot.mqtt.client_id", lambda v: self._by_key.get(("mqtt", v.lower()))),
            ("host.name", self.by_host),
            ("host.hostname", self.by_host),
            ("host.mac", lambda v: self._by_key.get(("mac", _mac(v)))),
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
    def load(cls, path: str | Path, errors: list[str] | None = None) -> AssetRegister:
        """Load a YAML, JSON or CSV register (a list of assets, or ``{"assets": [...]}``).

        With ``errors`` given, bad rows are skipped and described there (file and
        row or line); otherwise the first bad row raises :class:`RegisterError`.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
            if path.suffix.lower() == ".csv":
                # line 1 is the header, so data row i is on line i + 2
                rows: Any = list(csv.DictReader(io.StringIO(text)))
                where = [f"{path}:{i + 2}" for i in range(len(rows))]
            else:
                data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
                rows = data.get("assets") if isinstance(data, Mapping) else data
                where = [f"{path}: asset #{i + 1}" for i in range(len(rows))] if isinstance(rows, list) else []
        except (OSError, ValueError, yaml.YAMLError, csv.Error) as exc:
            raise RegisterError(f"{path}: cannot read asset register: {exc}") from exc
        if not isinstance(rows, list):
            raise RegisterError(f"{path}: expected a list of assets")
        register = cls()
        for row, at in zip(rows, where, strict=True):
            try:
                if not isinstance(row, Mapping):
                    raise RegisterError(f"{at}: not a mapping")
                if path.suffix.lower() == ".csv":
                    row = {k: v for k, v in row.items() if k and v not in (None, "")}
                register.add(Asset.from_dict(row, where=at))
            except RegisterError as exc:
                if errors is None:
                    raise
                errors.append(str(exc) if str(exc).startswith(str(path)) else f"{at}: {exc}")
        return register

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for asset in self:
            row = asdict(asset)
            row.update(row.pop("extra"))
            out.append(row)
        return out

    def dump(self, path: str | Path) -> None:
        """Write the register as JSON, or as CSV when the path ends in ``.csv``."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            path.write_text(self.to_csv(), encoding="utf-8")
            return
        path.write_text(json.dumps({"assets": self.rows()}, indent=2, ensure_ascii=False), encoding="utf-8")

    def to_csv(self) -> str:
        columns = [f.name for f in fields(Asset) if f.name != "extra"]
        extra = sorted({k for asset in self for k in asset.extra})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns + extra, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({k: " ".join(v) if isinstance(v, (list, tuple)) else v for k, v in row.items()})
        return buf.getvalue()


def _mac(value: str) -> str:
    return value.lower().replace("-", ":")


def _keys(asset: Asset) -> Iterator[tuple[str, str]]:
    for kind, values in (
        ("ip", asset.ips),
        ("host", asset.hostnames),
        ("device", asset.device_ids),
        ("mac", tuple(_mac(m) for m in asset.macs)),
        ("mqtt", asset.mqtt_client_ids),
    ):
        for value in values:
            yield kind, value


@dataclass(frozen=True)
class Candidate:
    """A device seen in telemetry that the register does not know."""

    kind: str
    value: str
    count: int
    first_seen: datetime
    last_seen: datetime
    datasets: tuple[str, ...]
    hints: Mapping[str, str]


#: the city's own address space by default: RFC 1918, carrier-grade NAT and IPv6 unique-local ranges
CITY_NETWORKS: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")

#: event field -> register key kind, for candidates
_CANDIDATE_FIELDS = (
    ("iot.device.id", "device"),
    ("ot.plc.id", "device"),
    ("iot.mqtt.client_id", "mqtt"),
    ("host.name", "host"),
    ("host.mac", "mac"),
    ("source.ip", "ip"),
    ("destination.ip", "ip"),
    ("host.ip", "ip"),
)
_HINTS = ("iot.device.type", "iot.device.vendor", "iot.device.model", "host.type", "observer.vendor", "asset.area")


def candidates(
    store: Store, register: AssetRegister, since: datetime | None = None, networks: Iterable[str] = CITY_NETWORKS
) -> list[Candidate]:
    """Devices in stored events (since ``since``) that match no register entry, most frequent first.

    Addresses count only inside ``networks`` (the city's own); outside ones are peers or attackers.
    """
    nets = [ipaddress.ip_network(n) for n in networks]
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for event in store.iter_events(since):
        for name, kind in _CANDIDATE_FIELDS:
            value = event.get(name)
            for item in value if isinstance(value, tuple) else (value,):
                if not isinstance(item, str) or not item:
                    continue
                key_value = _mac(item) if kind == "mac" else item
                if register.knows(kind, key_value):
                    continue
                if kind == "ip" and not any(ipaddress.ip_address(item) in net for net in nets):
                    continue
                entry = seen.setdefault(
                    (kind, key_value.lower()),
                    {"value": item, "count": 0, "first": event.timestamp, "last": event.timestamp, "ds": {}, "h": {}},
                )
                entry["count"] += 1
                entry["first"] = min(entry["first"], event.timestamp)
                entry["last"] = max(entry["last"], event.timestamp)
                dataset = event.get("event.dataset")
                if isinstance(dataset, str):
                    entry["ds"][dataset] = None
                for hint in _HINTS:
                    if isinstance(event.get(hint), str):
                        entry["h"].setdefault(hint, event.get(hint))
    out = [
        Candidate(kind, e["value"], e["count"], e["first"], e["last"], tuple(e["ds"]), dict(e["h"]))
        for (kind, _), e in seen.items()
    ]
    return sorted(out, key=lambda c: (-c.count, c.kind, c.value))


class AssetEnricher:
    """Adds ``asset.*`` fields to events (implements collectors.pipeline.Enricher)."""

    def __init__(self, register: AssetRegister) -> None:
        self.register = register

    def enrich(self, event: Event) -> Event:
        asset = self.register.match(event)
        if asset is None:
            return event
        return event.with_fields(asset.fields())
