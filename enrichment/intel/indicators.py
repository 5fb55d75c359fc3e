"""STIX indicator patterns compiled into constant-time lookups, and matching events against them.

Simple patterns — one comparison, or an ``OR`` of comparisons, of an IP address or
CIDR, domain, URL, e-mail address or file hash with ``=`` — go into hash sets, so the
cost of matching an event does not grow with the number of indicators (CIDRs are
looked up once per distinct prefix length).  Any other valid pattern is evaluated
with the OASIS ``stix2-matcher`` against the event as observed data; a pattern the
matcher cannot compile is recorded as *unsupported* with its reason, never dropped
silently.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from stix2matcher.matcher import Pattern as MatcherPattern

from enrichment.intel.errors import IntelError
from store.errors import EventValidationError
from store.event import Event, format_ts, parse_ts

#: Event fields checked per observable kind.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "ip": ("source.ip", "destination.ip", "client.ip", "server.ip", "host.ip", "related.ip"),
    "domain": ("url.domain", "destination.domain", "source.domain", "dns.question.name"),
    "url": ("url.original",),
    "hash": ("file.hash.md5", "file.hash.sha1", "file.hash.sha256", "related.hash"),
    "email": ("user.email",),
}

#: Event field -> observable kind, the inverse of EVENT_FIELDS.
_FIELD_KIND: dict[str, str] = {name: kind for kind, names in EVENT_FIELDS.items() for name in names}

#: STIX object path -> lookup kind.
_PATHS: dict[tuple[str, str], str] = {
    ("ipv4-addr", "value"): "ip",
    ("ipv6-addr", "value"): "ip",
    ("domain-name", "value"): "domain",
    ("url", "value"): "url",
    ("email-addr", "value"): "email",
}
_HASH_PATH = re.compile(r"hashes\.(?:'([^']+)'|([A-Za-z0-9-]+))$")
_COMPARISON = re.compile(r"\s*([a-z0-9-]+):([A-Za-z0-9_.'-]+)\s*=\s*'((?:[^'\\]|\\.)*)'\s*")
_SIMPLE = re.compile(r"^\[(.*)\]$", re.S)


@dataclass(frozen=True)
class IndicatorInfo:
    """What a match reports about the indicator."""

    id: str
    name: str
    feed: str


@dataclass(frozen=True)
class Match:
    """One indicator matching one event."""

    indicator: IndicatorInfo
    kind: str
    field: str
    atomic: str


@dataclass(frozen=True)
class Unsupported:
    indicator_id: str
    pattern: str
    reason: str


@dataclass
class CompileStats:
    simple: int = 0
    complex: int = 0
    #: revoked, or past their ``valid_until``: kept in the intel store, not matched
    inactive: int = 0
    unsupported: list[Unsupported] = field(default_factory=list)


def _split_or(body: str) -> list[tuple[str, str, str]] | None:
    """The comparisons of ``a = 'x' OR b = 'y'``, or None if the body is anything else."""
    out: list[tuple[str, str, str]] = []
    pos = 0
    while True:
        m = _COMPARISON.match(body, pos)
        if m is None:
            return None
        out.append((m.group(1), m.group(2), m.group(3).replace("\\'", "'").replace("\\\\", "\\")))
        pos = m.end()
        if pos == len(body):
            return out
        if body.startswith("OR", pos):
            pos += 2
            continue
        return None


def _simple_keys(pattern: str) -> list[tuple[str, str]] | None:
    """(kind, normalised value) pairs of a simple pattern, or None if it is not simple."""
    outer = _SIMPLE.match(pattern.strip())
    if outer is None or "[" in outer.group(1):
        return None
    comparisons = _split_or(outer.group(1))
    if comparisons is None:
        return None
    keys: list[tuple[str, str]] = []
    for otype, path, value in comparisons:
        kind = _PATHS.get((otype, path))
        if kind is None and otype == "file" and _HASH_PATH.match(path):
            kind = "hash"
        if kind is None:
            return None
        if kind == "ip":
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError:
                return None
            if network.num_addresses == 1:
                keys.append(("ip", str(network.network_address)))
            else:
                keys.append(("cidr", str(network)))
        else:
            keys.append((kind, value.lower()))
    return keys


class IndicatorIndex:
    """All active indicators, compiled; ``match(event)`` gives every hit."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(timezone.utc)
        # one dict per kind, so a lookup is a single hash probe on the event's value
        self._exact: dict[str, dict[str, list[IndicatorInfo]]] = {kind: {} for kind in EVENT_FIELDS}
        # per IP version: [(shift, {network address as int: indicators})], one entry per prefix length
        self._cidr: dict[int, dict[int, dict[int, list[IndicatorInfo]]]] = {4: {}, 6: {}}
        self._complex: list[tuple[IndicatorInfo, MatcherPattern]] = []
        self.stats = CompileStats()

    def __len__(self) -> int:
        return self.stats.simple + self.stats.complex

    def add(self, indicator: Mapping[str, Any], feed: str = "") -> bool:
        """Compile one STIX indicator; returns False (and records why) if it is unsupported."""
        iid = str(indicator.get("id", ""))
        pattern = indicator.get("pattern")
        ptype = indicator.get("pattern_type", "stix")
        if indicator.get("type") != "indicator" or not isinstance(pattern, str):
            raise IntelError(f"{iid or '<no id>'}: not a STIX indicator with a pattern")
        valid_until = indicator.get("valid_until")
        if indicator.get("revoked") or (isinstance(valid_until, str) and _before(valid_until, self.now)):
            self.stats.inactive += 1
            return False
        if ptype != "stix":
            self.stats.unsupported.append(Unsupported(iid, pattern, f"pattern_type {ptype!r} is not evaluated"))
            return False
        info = IndicatorInfo(iid, str(indicator.get("name") or ""), feed)
        keys = _simple_keys(pattern)
        if keys is not None:
            for kind, value in keys:
                if kind == "cidr":
                    net = ipaddress.ip_network(value)
                    shift = (32 if net.version == 4 else 128) - net.prefixlen
                    slot = self._cidr[net.version].setdefault(shift, {})
                    slot.setdefault(int(net.network_address) >> shift, []).append(info)
                else:
                    self._exact[kind].setdefault(value, []).append(info)
            self.stats.simple += 1
            return True
        try:
            compiled = MatcherPattern(pattern)
        except Exception as exc:  # the matcher raises bare Exceptions for grammar errors; keep the reason
            self.stats.unsupported.append(Unsupported(iid, pattern, str(exc).strip() or type(exc).__name__))
            return False
        self._complex.append((info, compiled))
        self.stats.complex += 1
        return True

    def add_all(self, indicators: Iterable[Mapping[str, Any]], feed: str = "") -> int:
        return sum(1 for ind in indicators if self.add(ind, feed))

    def match(self, event: Event) -> list[Match]:
        hits: list[Match] = []
        exact = self._exact
        for name, value in event.fields.items():
            kind = _FIELD_KIND.get(name)
            if kind is None:
                continue
            table = exact[kind]
            for item in value if isinstance(value, tuple) else (value,):
                atomic = str(item)
                # events hold IPs in canonical form already; other kinds compare case-insensitively
                infos = table.get(atomic if kind == "ip" else atomic.lower())
                if infos:
                    hits.extend(Match(info, kind, name, atomic) for info in infos)
                if kind == "ip":
                    self._match_cidr(name, atomic, hits)
        if self._complex:
            observed = [_observed_data(event)]
            for info, compiled in self._complex:
                if compiled.match(observed):
                    hits.append(Match(info, "pattern", "", ""))
        return hits

    def _match_cidr(self, name: str, atomic: str, hits: list[Match]) -> None:
        if ":" in atomic:
            tables, number = self._cidr[6], int(ipaddress.IPv6Address(atomic))
        else:
            tables, number = self._cidr[4], int.from_bytes(socket.inet_aton(atomic), "big")
        # one probe per distinct prefix length, whatever the number of ranges
        for shift, table in tables.items():
            infos = table.get(number >> shift)
            if infos:
                hits.extend(Match(info, "cidr", name, atomic) for info in infos)


def _before(text: str, now: datetime) -> bool:
    try:
        return parse_ts(text) < now
    except EventValidationError:
        return False  # stix2 validated the timestamp already; an unreadable one does not retire the indicator


def _observed_data(event: Event) -> dict[str, Any]:
    """The event as a STIX observed-data (SCOs) for the pattern matcher."""
    objects: dict[str, dict[str, Any]] = {}
    n = 0

    def add(obj: dict[str, Any]) -> str:
        nonlocal n
        key = str(n)
        objects[key] = obj
        n += 1
        return key

    refs: dict[str, str] = {}
    for role in ("source", "destination"):
        ip = event.get(f"{role}.ip")
        if isinstance(ip, str):
            refs[role] = add({"type": "ipv6-addr" if ":" in ip else "ipv4-addr", "value": ip})
    if refs:
        traffic: dict[str, Any] = {"type": "network-traffic"}
        if "source" in refs:
            traffic["src_ref"] = refs["source"]
        if "destination" in refs:
            traffic["dst_ref"] = refs["destination"]
        for role, key in (("source", "src_port"), ("destination", "dst_port")):
            port = event.get(f"{role}.port")
            if isinstance(port, int):
                traffic[key] = port
        transport = event.get("network.transport")
        if isinstance(transport, str):
            traffic["protocols"] = [transport]
        add(traffic)
    for name in EVENT_FIELDS["domain"]:
        value = event.get(name)
        if isinstance(value, str):
            add({"type": "domain-name", "value": value})
    url = event.get("url.original")
    if isinstance(url, str):
        add({"type": "url", "value": url})
    hashes = {
        algo: event.get(f"file.hash.{key}")
        for algo, key in (("MD5", "md5"), ("SHA-1", "sha1"), ("SHA-256", "sha256"))
        if isinstance(event.get(f"file.hash.{key}"), str)
    }
    file_name = event.get("file.name")
    if hashes or isinstance(file_name, str):
        file_obj: dict[str, Any] = {"type": "file"}
        if hashes:
            file_obj["hashes"] = hashes
        if isinstance(file_name, str):
            file_obj["name"] = file_name
        add(file_obj)
    ts = format_ts(event.timestamp)
    return {
        "type": "observed-data",
        "first_observed": ts,
        "last_observed": ts,
        "number_observed": 1,
        "objects": objects,
    }
