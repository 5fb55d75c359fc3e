"""Sharing with the national incident-response network: an incident as a STIX 2.1 bundle, and sightings back.

The bundle holds the incident, CitySOC's identity, one observed-data (with its
cyber observables) per event of the incident, the indicators those events matched
(latest stored version) and a sighting per matched indicator.  Every object is
built with the ``stix2`` library, so an export that would not validate fails here
rather than at the receiver.  Ids are derived from the incident and event ids, so
exporting the same incident twice gives the same objects.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import stix2
import stix2.exceptions

from enrichment.intel.errors import IntelError
from enrichment.intel.feeds import read_bundle, validate_objects
from store.base import Store
from store.errors import StoreError
from store.event import Event
from store.intel import IntelStore

_NS = uuid.UUID("1f6d1d5e-2a43-5c55-9a55-c17a50c00001")
IDENTITY = stix2.v21.Identity(
    id=f"identity--{uuid.uuid5(_NS, 'citysoc')}",
    created="2026-01-01T00:00:00.000Z",
    modified="2026-01-01T00:00:00.000Z",
    name="CitySOC",
    identity_class="organization",
    sectors=["government-local"],
)


def _sid(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, '/'.join(parts))}"


def _observables(event: Event) -> list[Any]:
    """The event's addresses, domains, URLs and file hashes as STIX cyber observables."""
    out: list[Any] = []
    refs: dict[str, str] = {}
    for role in ("source", "destination"):
        ip = event.get(f"{role}.ip")
        if isinstance(ip, str):
            sco = stix2.v21.IPv6Address(value=ip) if ":" in ip else stix2.v21.IPv4Address(value=ip)
            out.append(sco)
            refs[role] = sco.id
    if refs:
        traffic: dict[str, Any] = {"protocols": [str(event.get("network.transport") or "ipv4")]}
        if "source" in refs:
            traffic["src_ref"] = refs["source"]
        if "destination" in refs:
            traffic["dst_ref"] = refs["destination"]
        for role, key in (("source", "src_port"), ("destination", "dst_port")):
            if isinstance(event.get(f"{role}.port"), int):
                traffic[key] = event.get(f"{role}.port")
        out.append(stix2.v21.NetworkTraffic(**traffic))
    for name in ("dns.question.name", "url.domain", "destination.domain"):
        if isinstance(event.get(name), str):
            out.append(stix2.v21.DomainName(value=event.get(name)))
    if isinstance(event.get("url.original"), str):
        out.append(stix2.v21.URL(value=event.get("url.original")))
    hashes = {
        algo: event.get(f"file.hash.{key}")
        for algo, key in (("MD5", "md5"), ("SHA-1", "sha1"), ("SHA-256", "sha256"))
        if isinstance(event.get(f"file.hash.{key}"), str)
    }
    if hashes:
        out.append(stix2.v21.File(hashes=hashes, name=event.get("file.name")))
    return out


def export_incident(store: Store, intel: IntelStore, incident_id: str) -> stix2.v21.Bundle:
    """The incident as a validated STIX 2.1 bundle."""
    try:
        incident = store.get_incident(incident_id)
        alerts = store.list_alerts(incident_id=incident_id)
        event_ids = list(dict.fromkeys(eid for alert in alerts for eid in alert.event_ids))
        events = store.get_events(event_ids)
    except StoreError as exc:
        raise IntelError(f"cannot export incident {incident_id}: {exc}") from exc
    # a retro-hunt hit is not written back into the stored event; its indicator ids are on the alert's tags
    matched: dict[str, dict[str, None]] = {}
    for alert in alerts:
        for tag in alert.tags:
            if tag.startswith("stix.indicator--"):
                for eid in alert.event_ids:
                    matched.setdefault(eid, {})[tag[len("stix.") :]] = None
    objects: dict[str, Any] = {IDENTITY.id: IDENTITY}
    entities = ", ".join(f"{k}={'/'.join(v)}" for k, v in sorted(incident.entities.items()))
    try:
        stix_incident = stix2.v21.Incident(
            id=_sid("incident", incident.id),
            created=incident.created,
            modified=incident.updated,
            created_by_ref=IDENTITY.id,
            name=incident.title,
            description=f"CitySOC incident {incident.id}, severity {incident.severity.label}, "
            f"status {incident.status.value}; {len(alerts)} alert(s). Entities: {entities}",
            labels=[f"severity:{incident.severity.label}"],
            external_references=[{"source_name": "citysoc", "external_id": incident.id}],
        )
        objects[stix_incident.id] = stix_incident
        for event in events:
            scos = _observables(event)
            for sco in scos:
                objects[sco.id] = sco
            if not scos:
                continue  # an event without observables (e.g. a login on a camera) has nothing to share
            observed = stix2.v21.ObservedData(
                id=_sid("observed-data", incident.id, event.id),
                created_by_ref=IDENTITY.id,
                created=event.timestamp,
                modified=event.timestamp,
                first_observed=event.timestamp,
                last_observed=event.timestamp,
                number_observed=1,
                object_refs=[s.id for s in scos],
            )
            objects[observed.id] = observed
            objects[_sid("relationship", stix_incident.id, observed.id)] = stix2.v21.Relationship(
                id=_sid("relationship", stix_incident.id, observed.id),
                created=incident.created,
                modified=incident.created,
                source_ref=stix_incident.id,
                target_ref=observed.id,
                relationship_type="related-to",
            )
            indicator_ids = dict.fromkeys(event.get("threat.indicator.id") or ())
            indicator_ids.update(matched.get(event.id, {}))
            for indicator_id in indicator_ids:
                try:
                    doc = intel.get(indicator_id).doc
                except StoreError as exc:
                    raise IntelError(f"incident {incident_id}: event {event.id} names {exc}") from exc
                objects[indicator_id] = stix2.parse(dict(doc), allow_custom=True, version="2.1")
                sighting_id = _sid("sighting", indicator_id, incident.id)
                previous = objects.get(sighting_id)
                refs = [*(previous.observed_data_refs if previous else []), observed.id]
                first = min(previous.first_seen, event.timestamp) if previous else event.timestamp
                last = max(previous.last_seen, event.timestamp) if previous else event.timestamp
                objects[sighting_id] = stix2.v21.Sighting(
                    id=sighting_id,
                    created=incident.created,
                    modified=incident.updated,
                    created_by_ref=IDENTITY.id,
                    sighting_of_ref=indicator_id,
                    observed_data_refs=refs,
                    where_sighted_refs=[IDENTITY.id],
                    first_seen=first,
                    last_seen=last,
                    count=len(refs),
                )
        return stix2.v21.Bundle(objects=list(objects.values()), allow_custom=True)
    except stix2.exceptions.STIXError as exc:
        raise IntelError(f"incident {incident_id}: export is not valid STIX 2.1: {exc}") from exc


def import_sightings(path: str | Path, intel: IntelStore, feed: str | None = None) -> list[Mapping[str, Any]]:
    """Store the sightings (and objects they refer to) of a bundle from a partner; returns the new sightings."""
    path = Path(path)
    errors: list[str] = []
    objects = validate_objects(read_bundle(path), str(path), errors)
    if errors:
        raise IntelError("; ".join(errors))
    new = intel.put_objects(objects, feed or f"sightings:{path.name}")
    return [json.loads(json.dumps(item.doc)) for item in new if item.type == "sighting"]
