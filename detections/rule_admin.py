"""Rule management for detection engineers: the catalogue, the Sigma editor's checks, exceptions.

The console's rule pages and ``/api/v1/rules`` are thin shells over this module:

* :func:`catalogue` -- every rule of the loaded pack (built-in plus ``$CITYSOC_HOME/rules``) with its
  level, status, logsource, ATT&CK tags, enabled state, alert counts over 24 h and 7 d and its
  *noise*: the share of its alerts whose incident was judged a false positive;
* :func:`validate` -- a pasted rule through the same loader the engine uses (pySigma, the CitySOC
  field pipeline, the matcher), every problem with its line;
* :func:`test_rule` -- a rule against stored events or pasted sample events, routed and matched by
  the engine's :class:`~detections.sigma.matcher.RuleSet`;
* :func:`save_rule` -- a valid rule into the custom rules directory (audited);
* :func:`set_enabled` -- the run-time switch :class:`detections.rule_state.RuleGate` honours;
* :func:`create_exception` / :func:`remove_exception` -- a Sigma filter excluding one entity from
  one rule, made from an incident judged a false positive, optionally expiring (a suppression window).

Rule text is attacker-influenced (pasted from anywhere): it is only ever parsed as YAML data by
the safe loader, never evaluated, and written to a file whose name this module chooses.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from detections.errors import DetectionError
from detections.pack import LoadedRules, custom_rules_dir
from detections.rule_state import (
    RuleException,
    exceptions_dir,
    load_exceptions,
    read_disabled,
    set_disabled,
    state_path,
)
from detections.sigma.loader import LoadReport, RuleEntry, RuleKind, RuleStatus, load_rule_text
from detections.sigma.matcher import CompiledRule, RuleSet
from enrichment.intel.attack import technique_ids
from store.base import Store
from store.errors import EventValidationError
from store.event import Event
from store.models import Incident

#: a pasted rule or sample is at most this long (the console's request limit is 1 MiB)
MAX_TEXT = 256 * 1024
#: stored events a test may scan, and matches it reports
MAX_TEST_EVENTS = 200_000
MAX_MATCHES = 200
MAX_TEST_HOURS = 24 * 30

#: incident fields an exception can be made on, strongest first (the incident entity fields)
EXCEPTION_FIELDS: tuple[str, ...] = (
    "source.ip",
    "destination.ip",
    "host.name",
    "user.name",
    "iot.device.id",
    "ot.plc.id",
    "asset.id",
)

_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class RuleAdminError(DetectionError):
    """A rule-management request cannot be done; ``field`` names the input at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Unknown(RuleAdminError):
    """The rule or exception named does not exist (``kind`` and ``ident`` say which)."""

    def __init__(self, kind: str, ident: str, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.kind = kind
        self.ident = ident


class UnknownRule(Unknown):
    def __init__(self, rule_id: str) -> None:
        super().__init__("rule", rule_id, "rule_id", f"no loaded rule has the id {rule_id!r}")


def is_false_positive(verdict: str | None) -> bool:
    """Whether an incident verdict means "false positive" (``false_positive``, ``false-positive``, ``FP`` ...)."""
    if not verdict:
        return False
    normal = re.sub(r"[\s-]+", "_", verdict.strip().lower())
    return normal in ("false_positive", "fp")


# ---------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class RuleHits:
    """Alerts of one rule: last 24 h, last 7 d, all time, and all-time alerts judged false positives."""

    day: int = 0
    week: int = 0
    total: int = 0
    false_positives: int = 0

    @property
    def noise(self) -> float | None:
        """False-positive share of all its alerts; None before its first alert."""
        return self.false_positives / self.total if self.total else None


def alert_hits(store: Store, now: datetime | None = None) -> dict[str, RuleHits]:
    """Per rule id, from three GROUP BY queries on the store."""
    now = now or datetime.now(timezone.utc)
    day = store.count_alerts_by_rule(now - timedelta(days=1))
    week = store.count_alerts_by_rule(now - timedelta(days=7))
    total = store.count_alerts_by_rule(None)
    out: dict[str, RuleHits] = {}
    for rule_id, verdicts in total.items():
        out[rule_id] = RuleHits(
            day=sum(day.get(rule_id, {}).values()),
            week=sum(week.get(rule_id, {}).values()),
            total=sum(verdicts.values()),
            false_positives=sum(n for v, n in verdicts.items() if is_false_positive(v)),
        )
    return out


@dataclass(frozen=True)
class RuleInfo:
    """One rule as the rule list shows it."""

    rule_id: str
    title: str
    kind: str  # "rule" or "correlation"
    level: str
    status: str
    logsource: str
    tags: tuple[str, ...]
    attack: tuple[str, ...]
    path: str
    line: int | None
    custom: bool
    enabled: bool
    hits: RuleHits = field(default_factory=RuleHits)
    description: str = ""
    disabled_by: str = ""
    disabled_reason: str = ""


def _logsource(rule: SigmaRule) -> str:
    ls = rule.logsource
    return "/".join(f"{k}:{v}" for k, v in (("product", ls.product), ("category", ls.category),
                                              ("service", ls.service)) if v)


def _rule_id(entry: RuleEntry) -> str | None:
    if entry.compiled is not None:
        return entry.compiled.rule_id
    rule = entry.rule
    if isinstance(rule, SigmaCorrelationRule):
        return str(rule.id or rule.title)  # as the engine names correlation alerts
    return entry.rule_id


def catalogue(
    loaded: LoadedRules,
    hits: Mapping[str, RuleHits] | None = None,
    root: Path | None = None,
) -> list[RuleInfo]:
    """Every runnable rule (single-event and evaluated correlation rules), sorted by title."""
    disabled = read_disabled(state_path(root))
    custom = (custom_rules_dir() if root is None else root / "rules").resolve()
    evaluated = {id(rule) for rule in loaded.correlations}
    out: list[RuleInfo] = []
    for entry in loaded.report.entries:
        rule = entry.rule
        runnable = entry.compiled is not None or (isinstance(rule, SigmaCorrelationRule) and id(rule) in evaluated)
        rule_id = _rule_id(entry)
        if not runnable or rule is None or rule_id is None:
            continue
        tags = tuple(f"{t.namespace}.{t.name}" for t in rule.tags)
        off = disabled.get(rule_id)
        out.append(
            RuleInfo(
                rule_id=rule_id,
                title=str(rule.title),
                kind="correlation" if isinstance(rule, SigmaCorrelationRule) else "rule",
                level=rule.level.name.lower() if rule.level is not None else "medium",
                status=rule.status.name.lower() if rule.status is not None else "",
                logsource=_logsource(rule) if isinstance(rule, SigmaRule) else "correlation",
                tags=tags,
                attack=tuple(technique_ids(tags)),
                path=entry.location.path,
                line=entry.location.line,
                custom=Path(entry.location.path).resolve().is_relative_to(custom),
                enabled=off is None,
                hits=(hits or {}).get(rule_id, RuleHits()),
                description=str(rule.description or ""),
                disabled_by=off.by if off else "",
                disabled_reason=off.reason if off else "",
            )
        )
    out.sort(key=lambda info: (info.title.lower(), info.rule_id))
    return out


def find_rule(rules: Iterable[RuleInfo], rule_id: str) -> RuleInfo:
    for info in rules:
        if info.rule_id == rule_id:
            return info
    raise UnknownRule(rule_id)


def rule_source(info: RuleInfo) -> str:
    """The text of the file that holds the rule (every document of it), for the editor."""
    try:
        return Path(info.path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleAdminError("rule_id", f"cannot read {info.path}: {exc.strerror or exc}") from exc


def set_enabled(
    store: Store, loaded_ids: Iterable[str], rule_id: str, enabled: bool, actor: str, reason: str = "",
    root: Path | None = None,
) -> bool:
    """Switch a loaded rule on or off for every engine (audited); False when it was so already."""
    if rule_id not in set(loaded_ids):
        raise UnknownRule(rule_id)
    if not enabled and not reason.strip():
        raise RuleAdminError("reason", "say why the rule is disabled (it is kept in the audit log)")
    changed = set_disabled(state_path(root), rule_id, not enabled, actor, reason.strip())
    if changed:
        store.audit(actor, "rule.enable" if enabled else "rule.disable", f"rule:{rule_id}", {"reason": reason.strip()})
    return changed


# ---------------------------------------------------------------- the editor: validate


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pasted rule: 1-based line (None: the whole text), severity, reason."""

    line: int | None
    severity: str  # "error" (cannot be saved) or "warning" (saved, but will not do what it says)
    message: str


@dataclass(frozen=True)
class Validation:
    report: LoadReport
    problems: tuple[Problem, ...]
    #: single-event rules that compiled
    compiled: tuple[CompiledRule, ...]
    #: ids of every rule document (single-event and correlation)
    rule_ids: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def _check_text(text: str, name: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise RuleAdminError(name, "paste the text first")
    if len(text) > MAX_TEXT:
        raise RuleAdminError(name, f"at most {MAX_TEXT} characters (got {len(text)})")
    return text


def validate(text: str, origin: str = "rule") -> Validation:
    """Load a pasted rule like the engine loads a rule file; every problem with its line."""
    report = load_rule_text(_check_text(text, "text"), origin)
    problems: list[Problem] = []
    compiled: list[CompiledRule] = []
    ids: list[str] = []
    for entry in report.entries:
        where = entry.location.line
        if entry.status is RuleStatus.INVALID:
            problems.append(Problem(where, "error", entry.reason or "invalid rule"))
            continue
        if entry.kind is RuleKind.FILTER:
            problems.append(Problem(where, "error", "a Sigma filter is not a rule: make exceptions from an incident"))
            continue
        if entry.rule is not None and entry.rule.id is None:
            problems.append(Problem(where, "error", "give the rule an id (a UUID): alerts and exceptions name it"))
        rule_id = _rule_id(entry)
        if rule_id is not None:
            ids.append(rule_id)
        if entry.kind is RuleKind.CORRELATION:
            problems.append(Problem(where, "warning", "correlation rule: it is saved and evaluated by the engine, "
                                                      "but the editor tests single-event rules only"))
            continue
        if entry.status is RuleStatus.UNSUPPORTED:
            problems.append(Problem(where, "error", f"the engine cannot run this rule: {entry.reason}"))
            continue
        if entry.unmapped_fields:
            problems.append(Problem(where, "warning", "fields not in the CitySOC schema (no event carries them): "
                                                      + ", ".join(entry.unmapped_fields)))
        if entry.compiled is not None:
            compiled.append(entry.compiled)
    return Validation(report, tuple(problems), tuple(compiled), tuple(ids))


# ---------------------------------------------------------------- the editor: test


@dataclass(frozen=True)
class RuleMatch:
    event: Event
    rule_ids: tuple[str, ...]


@dataclass(frozen=True)
class TestResult:
    validation: Validation
    scanned: int
    matches: tuple[RuleMatch, ...]
    #: more events matched than :data:`MAX_MATCHES` (only the first are listed)
    truncated: bool = False
    #: the scan stopped at :data:`MAX_TEST_EVENTS`
    scan_limited: bool = False


def parse_sample(text: str) -> list[Event]:
    """Sample events from a JSON object, a JSON array of objects, or NDJSON (one object per line)."""
    body = _check_text(text, "sample").strip()
    docs: list[tuple[str, Any]] = []
    if body.startswith("["):
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError as exc:
            raise RuleAdminError("sample", f"line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
        docs = [(f"item {n}", doc) for n, doc in enumerate(parsed, 1)]
    else:
        try:
            docs = [("line 1", json.loads(body))]
        except json.JSONDecodeError:
            for number, line in enumerate(body.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    docs.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise RuleAdminError("sample", f"line {number} column {exc.colno}: {exc.msg}") from exc
    events: list[Event] = []
    for where, doc in docs:
        if not isinstance(doc, dict):
            raise RuleAdminError("sample", f"{where}: an event is a JSON object, not {type(doc).__name__}")
        try:
            events.append(Event.from_document(doc))
        except (EventValidationError, ValueError) as exc:
            raise RuleAdminError("sample", f"{where}: {exc}") from exc
    return events


def test_rule(validation: Validation, events: Iterable[Event]) -> TestResult:
    """Run the validated rule's single-event rules over ``events`` as the engine would (routing and matcher)."""
    if not validation.ok:
        raise RuleAdminError("text", "fix the errors before testing: " + "; ".join(
            f"line {p.line}: {p.message}" if p.line else p.message for p in validation.problems if p.severity == "error"
        ))
    if not validation.compiled:
        raise RuleAdminError("text", "there is no single-event rule to test")
    ruleset = RuleSet(validation.compiled)
    matches: list[RuleMatch] = []
    scanned = 0
    truncated = limited = False
    for event in events:
        if scanned >= MAX_TEST_EVENTS:
            limited = True
            break
        scanned += 1
        hit = ruleset.match(event)
        if hit:
            if len(matches) >= MAX_MATCHES:
                truncated = True
                continue
            matches.append(RuleMatch(event, tuple(rule.rule_id for rule in hit)))
    return TestResult(validation, scanned, tuple(matches), truncated, limited)


def stored_events(store: Store, hours: int, now: datetime | None = None) -> Iterator[Event]:
    """The last ``hours`` of stored events, oldest first."""
    if not 1 <= hours <= MAX_TEST_HOURS:
        raise RuleAdminError("hours", f"between 1 and {MAX_TEST_HOURS}")
    end = now or datetime.now(timezone.utc)
    return store.iter_events(start=end - timedelta(hours=hours), end=end)


# ---------------------------------------------------------------- the editor: save


def save_rule(
    store: Store, validation: Validation, text: str, actor: str, known: Iterable[RuleInfo], root: Path | None = None,
) -> Path:
    """Write a valid rule into the custom rules directory and enable it (audited).

    The file is named after the first rule id; a custom rule with that id is replaced, a built-in
    one is not (copy it under a new id instead).  The engine loads new rule files when it starts.
    """
    if not validation.ok:
        raise RuleAdminError("text", "the rule has errors; validate it and fix them first")
    if not validation.rule_ids:
        raise RuleAdminError("text", "there is no rule to save")
    first = validation.rule_ids[0]
    if not _RULE_ID.fullmatch(first):
        raise RuleAdminError("id", f"{first!r} cannot name a file; use a UUID")
    directory = (root / "rules") if root is not None else custom_rules_dir()
    target = directory / f"{first}.yml"
    by_id = {info.rule_id: info for info in known}
    for rule_id in validation.rule_ids:
        existing = by_id.get(rule_id)
        if existing is not None and Path(existing.path) != target:
            raise RuleAdminError("id", f"rule id {rule_id} is already used by {existing.path}; give this rule a new id")
    directory.mkdir(parents=True, exist_ok=True)
    replaced = target.exists()
    target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    for rule_id in validation.rule_ids:
        set_disabled(state_path(root), rule_id, False, actor)
    store.audit(
        actor, "rule.save", f"rule:{first}",
        {"path": str(target), "rule_ids": list(validation.rule_ids), "replaced": replaced},
    )
    return target


# ---------------------------------------------------------------- exceptions


def sigma_literal(value: str) -> str:
    """``value`` as a Sigma string that matches only itself: wildcards and backslashes escaped."""
    return re.sub(r"([*?\\])", r"\\\1", value)


def exception_candidates(incident: Incident) -> dict[str, str]:
    """Entity fields of the incident an exception can name, with their (single) value."""
    out: dict[str, str] = {}
    for name in EXCEPTION_FIELDS:
        values = incident.entities.get(name) or ()
        if len(values) == 1:
            out[name] = str(values[0])
    return out


def create_exception(
    store: Store,
    incident_id: str,
    rule_id: str,
    fields: Sequence[str],
    actor: str,
    reason: str,
    expires: datetime | None = None,
    root: Path | None = None,
    now: datetime | None = None,
) -> RuleException:
    """A Sigma filter excluding the incident's entity (``fields``) from ``rule_id``, from a false-positive verdict."""
    incident = store.get_incident(incident_id)
    if not is_false_positive(incident.verdict):
        raise RuleAdminError("incident_id", f"incident {incident_id} has no false-positive verdict "
                                            f"(verdict: {incident.verdict or 'none'})")
    rules = {alert.rule_id for alert in store.list_alerts(incident_id=incident_id)}
    if rule_id not in rules:
        raise RuleAdminError("rule_id", f"no alert of incident {incident_id} comes from rule {rule_id!r}")
    if not reason.strip():
        raise RuleAdminError("reason", "say why these events are benign (it is kept with the exception)")
    candidates = exception_candidates(incident)
    chosen = list(dict.fromkeys(fields))
    if not chosen:
        raise RuleAdminError("fields", "choose at least one entity field: " + (", ".join(candidates) or "none"))
    for name in chosen:
        if name not in candidates:
            raise RuleAdminError("fields", f"{name!r} is not a single-valued entity of the incident "
                                           f"(choose from {', '.join(candidates) or 'none'})")
    now = now or datetime.now(timezone.utc)
    if expires is not None and expires <= now:
        raise RuleAdminError("expires", "must be in the future")
    exc_id = "EXC-" + uuid.uuid4().hex[:12].upper()
    doc: dict[str, Any] = {
        "title": f"Exception for {rule_id}: " + ", ".join(f"{n}={candidates[n]}" for n in chosen),
        "id": str(uuid.uuid4()),
        "description": reason.strip(),
        "date": now.strftime("%Y-%m-%d"),
        "created-by": actor,
        "source": {"incident": incident_id, "verdict": incident.verdict},
        "logsource": {"product": "citysoc"},
        "filter": {
            "rules": [rule_id],
            "selection": {name: sigma_literal(candidates[name]) for name in chosen},
            "condition": "not selection",
        },
    }
    if expires is not None:
        doc["expires"] = expires.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    directory = exceptions_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{exc_id}.yml"
    # safe_dump quotes any value YAML would misread: entity values are attacker-controlled data
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    loaded, problems = load_exceptions(tmp)  # checked before it goes live
    if problems or not loaded:
        tmp.unlink()
        raise RuleAdminError("fields", "the exception would not load: " + "; ".join(problems))
    tmp.replace(path)
    store.audit(actor, "rule.exception.create", f"rule:{rule_id}", {
        "exception": exc_id, "incident": incident_id, "fields": {n: candidates[n] for n in chosen},
        "expires": doc.get("expires"), "reason": reason.strip(),
    })
    return list_exceptions(root, ids=[exc_id])[0]


def list_exceptions(root: Path | None = None, ids: Sequence[str] | None = None) -> list[RuleException]:
    items, _ = load_exceptions(exceptions_dir(root))
    if ids is not None:
        items = [item for item in items if item.id in ids]
    return sorted(items, key=lambda item: item.id)


def remove_exception(store: Store, exc_id: str, actor: str, root: Path | None = None) -> None:
    if not re.fullmatch(r"EXC-[0-9A-F]{12}", exc_id):
        raise RuleAdminError("exception_id", f"{exc_id!r} is not an exception id (EXC-...)")
    path = exceptions_dir(root) / f"{exc_id}.yml"
    try:
        path.unlink()
    except FileNotFoundError:
        raise Unknown("exception", exc_id, "exception_id", f"no exception {exc_id}") from None
    store.audit(actor, "rule.exception.remove", f"exception:{exc_id}", {})
