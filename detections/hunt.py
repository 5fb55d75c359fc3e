"""Offline hunting: run a rule set over log files without storing anything.

Each input line is parsed by the named collector parser, or by the first
parser that recognises it; every rule match is written as one NDJSON line
with the rule, the input file and the matched event (ECS document).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from collectors.base import BadRecord, CollectorError, NotMyFormat, Parser, RawRecord, get_parser
from collectors.parsers.evtx import read_evtx
from detections.correlation import Correlator
from detections.engine import level_to_severity
from detections.pack import LoadedRules
from store.errors import EventValidationError
from store.event import Event

#: tried in this order when no format is given: the most specific formats first
AUTO_FORMATS: tuple[str, ...] = ("windows.evtx", "ecs.json", "camera.platform", "iot.mqtt", "zeek", "syslog")


def _parsers(fmt: str | None) -> list[Parser]:
    if fmt:
        return [get_parser(fmt)]
    out = []
    for name in AUTO_FORMATS:
        try:
            out.append(get_parser(name))
        except CollectorError:
            continue
    return out


#: a .json file up to this size is first tried as one document (pretty-printed EVTX-as-JSON)
WHOLE_JSON_LIMIT = 64 * 1024 * 1024


def _records(path: Path) -> Iterator[RawRecord]:
    """Records of one input: EVTX records, one whole JSON document or array, else one per line."""
    if path.suffix.lower() == ".evtx":
        yield from read_evtx(path)
        return
    if path.suffix.lower() == ".json" and path.stat().st_size <= WHOLE_JSON_LIMIT:
        documents = _json_documents(path.read_text(encoding="utf-8", errors="replace"))
        if documents is not None:
            for offset, doc in documents:
                yield RawRecord(doc, f"file:{path}", str(offset), path=str(path))
            return
    offset = 0
    with path.open("rb") as fh:
        for raw in fh:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.strip():
                yield RawRecord(line, f"file:{path}", str(offset), path=str(path))
            offset += len(raw)


def _json_documents(text: str) -> list[tuple[int, str]] | None:
    """Concatenated (pretty-printed) JSON documents or one array, with character offsets.

    None when the text is one document per line (NDJSON; read line by line, so a bad line is
    reported alone) or does not decode as a sequence of documents.
    """
    decoder = json.JSONDecoder()
    out: list[tuple[int, str]] = []
    pos = 0
    multi_line = False
    while True:
        while pos < len(text) and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if pos >= len(text):
            break
        try:
            doc, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
        if isinstance(doc, list):
            out += [(pos, json.dumps(item)) for item in doc]
            multi_line = True
        else:
            chunk = text[pos:end]
            multi_line = multi_line or "\n" in chunk
            out.append((pos, chunk))
        pos = end
    return out if multi_line else None


def _parse(record: RawRecord, parsers: list[Parser]) -> list[Event] | str:
    """Events of the record, or the reason it could not be parsed."""
    reasons = []
    for parser in parsers:
        try:
            return parser.parse(record)
        except NotMyFormat as exc:
            reasons.append(f"not {parser.name}: {exc}")
        except (BadRecord, EventValidationError) as exc:
            return f"{parser.name}: {exc}"
    return "; ".join(reasons) or "no parser"


def hunt_files(
    rules: LoadedRules,
    inputs: Iterable[Path],
    fmt: str | None = None,
    out: IO[str] = sys.stdout,
    progress: bool = False,
) -> dict[str, Any]:
    parsers = _parsers(fmt)
    correlator = Correlator(rules.correlations)  # fresh state: a hunt never shares windows with the stream
    summary: dict[str, Any] = {"files": 0, "records": 0, "events": 0, "unparsed": 0, "matches": 0, "by_rule": {}}
    for path in inputs:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            summary["files"] += 1
            for record in _guarded(_records(file), summary):
                summary["records"] += 1
                parsed = _parse(record, parsers)
                if isinstance(parsed, str):
                    summary["unparsed"] += 1
                    continue
                for event in parsed:
                    summary["events"] += 1
                    event = event.with_fields({"log.file.path": str(file)})
                    names: list[str] = []
                    for rule in rules.ruleset.match(event):
                        names += [rule.rule_id, *([rule.name] if rule.name else [])]
                        _emit(out, rule.rule_id, rule.title, rule.level, list(rule.tags), file, event)
                        _count(summary, rule.title)
                    for hit in correlator.observe(names, event) if names else ():
                        corr = hit.rule
                        level = corr.level.name.lower() if corr.level else "medium"
                        tags = [f"{t.namespace}.{t.name}" for t in corr.tags]
                        extra = {
                            "correlation": {
                                "type": corr.type.name.lower(),
                                "group": dict(hit.group),
                                "event_ids": hit.events,
                            }
                        }
                        _emit(out, str(corr.id or corr.title), corr.title, level, tags, file, event, extra)
                        _count(summary, corr.title)
                if progress and summary["records"] % 10_000 == 0:
                    print(f"\r{summary['records']} records, {summary['matches']} matches", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    return summary


def _guarded(records: Iterator[RawRecord], summary: dict[str, Any]) -> Iterator[RawRecord]:
    """The records of one file; a file that cannot be read at all is reported, and the hunt goes on."""
    try:
        yield from records
    except CollectorError as exc:  # e.g. a truncated or foreign .evtx file
        summary.setdefault("unreadable", []).append(str(exc))
        print(f"citysoc hunt: {exc}", file=sys.stderr)


def _count(summary: dict[str, Any], title: str) -> None:
    summary["matches"] += 1
    summary["by_rule"][title] = summary["by_rule"].get(title, 0) + 1


def _emit(
    out: IO[str],
    rule_id: str,
    title: str,
    level: str,
    tags: list[str],
    path: Path,
    event: Event,
    extra: dict[str, Any] | None = None,
) -> None:
    line: dict[str, Any] = {
        **(extra or {}),
        "rule": {"id": rule_id, "title": title, "level": level_to_severity(level).label, "tags": tags},
        "log": {"file": {"path": str(path)}},
        "event": event.to_document(),
    }
    out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
