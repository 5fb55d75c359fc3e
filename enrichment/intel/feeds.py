"""Getting STIX 2.1 objects in: bundle files and TAXII 2.1 collections.

Every object is validated with the ``stix2`` library before it is stored; a bad
object is reported with its position and id and the rest of the bundle is kept
(one bad record never stops a batch).  A TAXII pull follows the server's paging
(``more``/``next``) and remembers ``X-TAXII-Date-Added-Last`` per collection, so
the next pull asks only for what was added since (``added_after``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import stix2
import stix2.exceptions
from taxii2client.common import _HTTPConnection
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection, as_pages

from enrichment.intel.errors import IntelError
from store.intel import IntelStore, StoredIntel


@dataclass
class ImportResult:
    """What an import or pull stored; ``errors`` are per-object reasons with their location."""

    feed: str
    new: list[StoredIntel] = field(default_factory=list)
    seen: int = 0
    errors: list[str] = field(default_factory=list)
    pages: int = 0
    added_last: str | None = None

    @property
    def new_indicators(self) -> list[Mapping[str, Any]]:
        return [item.doc for item in self.new if item.type == "indicator"]


def validate_objects(objects: Iterable[Any], where: str, errors: list[str]) -> list[dict[str, Any]]:
    """Objects that ``stix2`` accepts as STIX 2.1, as plain dicts; the others go to ``errors``."""
    good: list[dict[str, Any]] = []
    for i, obj in enumerate(objects):
        oid = obj.get("id", "<no id>") if isinstance(obj, Mapping) else "<not an object>"
        try:
            if not isinstance(obj, Mapping):
                raise IntelError("not a JSON object")
            parsed = stix2.parse(dict(obj), allow_custom=True, version="2.1")
            good.append(json.loads(parsed.serialize()) if hasattr(parsed, "serialize") else dict(parsed))
        except (stix2.exceptions.STIXError, IntelError, ValueError) as exc:
            errors.append(f"{where}: object #{i + 1} ({oid}): {exc}")
    return good


def read_bundle(path: str | Path) -> list[Any]:
    """The ``objects`` of a STIX bundle file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntelError(f"{path}: cannot read STIX bundle: {exc}") from exc
    if not isinstance(doc, Mapping) or doc.get("type") != "bundle" or not isinstance(doc.get("objects", []), list):
        raise IntelError(f"{path}: not a STIX bundle (expected an object with type 'bundle' and an 'objects' list)")
    return list(doc.get("objects", []))


def import_bundle(path: str | Path, intel: IntelStore, feed: str | None = None) -> ImportResult:
    """Validate and store the objects of a bundle file; new versions are returned."""
    path = Path(path)
    result = ImportResult(feed=feed or f"file:{path.name}")
    objects = read_bundle(path)
    result.seen = len(objects)
    good = validate_objects(objects, str(path), result.errors)
    result.new = intel.put_objects(good, result.feed)
    return result


def pull_taxii(
    collection_url: str,
    intel: IntelStore,
    user: str | None = None,
    password: str | None = None,
    per_request: int = 100,
    full: bool = False,
    verify: bool = True,
) -> ImportResult:
    """Pull a TAXII 2.1 collection (``.../collections/<id>/``), all pages, incrementally unless ``full``."""
    feed = f"taxii:{collection_url}"
    result = ImportResult(feed=feed)
    headers_seen: list[str] = []

    def remember(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        # taxii2-client returns only the body; the date header arrives on the response
        value = resp.headers.get("X-TAXII-Date-Added-Last")
        if value:
            headers_seen.append(value)

    conn = _HTTPConnection(user, password, verify, version="2.1")
    conn.session.hooks["response"].append(remember)
    filters: dict[str, Any] = {}
    since = None if full else intel.added_after(feed)
    if since:
        filters["added_after"] = since
    try:
        collection = Collection(collection_url, conn=conn)
        for page_no, envelope in enumerate(as_pages(collection.get_objects, per_request=per_request, **filters)):
            result.pages += 1
            objects = envelope.get("objects", []) if isinstance(envelope, Mapping) else []
            result.seen += len(objects)
            good = validate_objects(objects, f"{collection_url} page {page_no + 1}", result.errors)
            result.new.extend(intel.put_objects(good, feed))
    except (requests.RequestException, TAXIIServiceException) as exc:
        raise IntelError(f"TAXII pull from {collection_url} failed: {exc}") from exc
    finally:
        conn.close()
    if headers_seen:
        result.added_last = max(headers_seen)
        intel.set_added_after(feed, result.added_last)
    return result
