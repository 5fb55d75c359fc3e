"""Windows event log parser: EVTX records, EVTX-as-JSON and Winlogbeat/ECS JSON into ECS events.

Three layouts of the same Windows event are accepted:

* binary ``.evtx`` files, read with the ``evtx`` package (:func:`read_evtx` yields one
  :class:`RawRecord` per event record, holding the record rendered as JSON);
* the EVTX-as-JSON layout that ``evtx_dump`` and SigmaHQ's regression data use
  (``{"Event": {"System": ..., "EventData": ...}}``, possibly pretty-printed over many lines);
* Winlogbeat documents (``{"@timestamp": ..., "winlog": {"channel", "event_id", "event_data"}}``).

Field mapping (kept in step with :data:`detections.sigma.pipelines.WINDOWS_FIELDS`, which a test
checks): EventData items with an ECS name of their own (``Image`` -> ``process.executable``,
``TargetFilename`` -> ``file.path`` ...) get that name; every other item is kept as written
under ``winlog.event_data.<Name>``.  An item whose value does not fit its ECS field (an
``DestinationIp`` of ``-``) also stays under ``winlog.event_data`` instead of failing the record.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from collectors.base import NESTED_TOO_DEEP, BadRecord, CollectorError, NotMyFormat, Parser, RawRecord, register_parser
from collectors.field_names import WINDOWS_EVENT_DATA_FIELDS
from store.errors import EventValidationError
from store.event import Event, Value, parse_ts, stable_id, validate_field

SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"

#: EventData item -> ECS field, for every channel (the Sigma pipeline maps rule fields from the same table).
EVENT_DATA_FIELDS: dict[str, str] = WINDOWS_EVENT_DATA_FIELDS

#: Security 4688 names its process fields differently; process_creation rules use the Sysmon names.
SECURITY_4688_FIELDS: dict[str, str] = {
    "NewProcessName": "process.executable",
    "ParentProcessName": "process.parent.executable",
}

EVENT_DATA_PREFIX = "winlog.event_data."


class EvtxError(CollectorError):
    """An .evtx file cannot be read at all (not an EVTX file, unreadable)."""


def _text(value: Any) -> Any:
    """The value of an EVTX JSON node: ``{"#text": v, "#attributes": ...}`` collapses to ``v``."""
    if isinstance(value, Mapping) and "#text" in value:
        return value["#text"]
    return value


def _scalar(value: Any) -> str | int | float | bool | None:
    value = _text(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return "\n".join(str(v) for v in value)  # multi-part Data element
    return json.dumps(value, sort_keys=True, ensure_ascii=False)  # kept as data, never interpreted


def _event_data(node: Any) -> dict[str, Any]:
    """EventData as name -> value: named items directly, or ``Data: [{"#attributes": {"Name"}}]``."""
    if not isinstance(node, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "#attributes":
            continue
        if key == "Data" and isinstance(value, (list, Mapping)):
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if isinstance(item, Mapping) and isinstance(item.get("#attributes"), Mapping):
                    name = str(item["#attributes"].get("Name") or f"param{index + 1}")
                    out[name] = item.get("#text")
                else:
                    out[f"param{index + 1}"] = item
            continue
        out[str(key)] = value
    return out


def _fields(channel: str, event_id: int, data: Mapping[str, Any]) -> dict[str, Value]:
    mapping = EVENT_DATA_FIELDS
    if channel == "Security" and event_id == 4688:
        mapping = {**EVENT_DATA_FIELDS, **SECURITY_4688_FIELDS}
    fields: dict[str, Value] = {}
    for name, raw in data.items():
        value = _scalar(raw)
        if value is None or value == "":
            continue
        target = mapping.get(name)
        if target is not None and target not in fields:
            # e.g. "-" for an address does not fit the ECS field: the item stays in event_data below
            with contextlib.suppress(EventValidationError):
                fields[target] = validate_field(target, value)
        # Every item also stays under its own name: rules outside the mapped categories use those.
        fields[EVENT_DATA_PREFIX + name] = value
    return fields


def windows_event(
    *,
    timestamp: str,
    channel: str,
    event_id: int,
    provider: str,
    computer: str,
    record_id: int | str | None,
    data: Mapping[str, Any],
    source: str,
    original: str | None = None,
) -> Event:
    """The ECS event of one Windows record (shared by the three layouts)."""
    dataset = "windows.sysmon" if channel == SYSMON_CHANNEL else "windows." + channel.split("/")[0].lower()
    fields: dict[str, Value] = {
        "event.dataset": dataset,
        "event.module": "windows",
        "event.code": str(event_id),
        "event.provider": provider,
        "host.os.type": "windows",
        "winlog.channel": channel,
        "winlog.event_id": str(event_id),
        "winlog.provider_name": provider,
        "winlog.computer_name": computer,
        "host.name": computer,
        **_fields(channel, event_id, data),
    }
    if record_id is not None:
        fields["winlog.record_id"] = str(record_id)
    if original is not None:
        fields["event.original"] = original
    event_key = stable_id("winlog", computer, channel, str(record_id), timestamp, str(event_id))
    try:
        return Event(id=event_key, timestamp=parse_ts(timestamp), fields=fields)
    except EventValidationError as exc:
        raise BadRecord(f"{source}: Windows event {event_id} on {channel!r}: {exc}") from exc


def _from_evtx_json(doc: Mapping[str, Any], source: str, original: str) -> Event:
    event = doc["Event"]
    if not isinstance(event, Mapping) or not isinstance(event.get("System"), Mapping):
        raise BadRecord(f"{source}: 'Event' has no 'System' object")
    system = event["System"]
    try:
        event_id = int(_text(system["EventID"]))
        timestamp = str(system["TimeCreated"]["#attributes"]["SystemTime"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRecord(f"{source}: System lacks a valid EventID or TimeCreated ({exc!r})") from exc
    provider = system.get("Provider", {})
    provider_name = provider.get("#attributes", {}).get("Name", "") if isinstance(provider, Mapping) else ""
    data = _event_data(event.get("EventData"))
    user_data = event.get("UserData")
    if isinstance(user_data, Mapping):
        for inner in user_data.values():  # UserData wraps its items in one provider-named element
            data.update(_event_data(inner))
    return windows_event(
        timestamp=timestamp,
        channel=str(_text(system.get("Channel")) or ""),
        event_id=event_id,
        provider=str(provider_name),
        computer=str(_text(system.get("Computer")) or ""),
        record_id=_scalar(system.get("EventRecordID")),  # type: ignore[arg-type]
        data=data,
        source=source,
        original=original,
    )


def _from_winlogbeat(doc: Mapping[str, Any], source: str, original: str) -> Event:
    winlog = doc["winlog"]
    try:
        event_id = int(winlog["event_id"])
        timestamp = str(doc["@timestamp"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRecord(f"{source}: Winlogbeat document lacks a valid winlog.event_id or @timestamp") from exc
    return windows_event(
        timestamp=timestamp,
        channel=str(winlog.get("channel") or ""),
        event_id=event_id,
        provider=str(winlog.get("provider_name") or ""),
        computer=str(winlog.get("computer_name") or ""),
        record_id=winlog.get("record_id"),
        data=winlog.get("event_data") or {},
        source=source,
        original=original,
    )


class WindowsEventParser(Parser):
    """One Windows event as EVTX-as-JSON or Winlogbeat JSON (a record may span many lines)."""

    name: ClassVar[str] = "windows.evtx"
    dataset: ClassVar[str] = "windows"
    description: ClassVar[str] = (
        "Windows event log records: .evtx files, EVTX-as-JSON (evtx_dump, SigmaHQ regression data), Winlogbeat JSON."
    )

    def parse(self, record: RawRecord) -> list[Event]:
        text = record.data.strip().lstrip("\ufeff")
        if not text.startswith("{"):
            raise NotMyFormat("not a JSON object")
        where = f"{record.source}@{record.offset}"
        try:
            doc = json.loads(text)
        except RecursionError:
            raise BadRecord(f"{where}: {NESTED_TOO_DEEP}") from None
        except json.JSONDecodeError as exc:
            if '"Event"' in text[:200] or '"winlog"' in text:
                raise BadRecord(f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
            raise NotMyFormat("not valid JSON") from exc
        if isinstance(doc, Mapping) and isinstance(doc.get("Event"), Mapping) and "System" in doc["Event"]:
            return [_from_evtx_json(doc, where, text)]
        if isinstance(doc, Mapping) and isinstance(doc.get("winlog"), Mapping) and "event_id" in doc["winlog"]:
            return [_from_winlogbeat(doc, where, text)]
        raise NotMyFormat("JSON object is neither EVTX-as-JSON nor a Winlogbeat document")


def read_evtx(path: Path) -> Iterator[RawRecord]:
    """The records of a binary .evtx file as JSON RawRecords (offset = event record id)."""
    try:
        from evtx import PyEvtxParser  # imported here: only .evtx input needs the native module
    except ImportError as exc:  # pragma: no cover - the dependency is pinned
        raise EvtxError("reading .evtx files needs the 'evtx' package (pip install evtx==0.14.0)") from exc
    try:
        parser = PyEvtxParser(str(path))
        for item in parser.records_json():
            if not item:
                continue
            yield RawRecord(str(item["data"]), f"file:{path}", str(item["event_record_id"]), path=str(path))
    except (OSError, RuntimeError) as exc:
        raise EvtxError(f"{path}: cannot read as EVTX: {exc}") from exc


register_parser(WindowsEventParser)
