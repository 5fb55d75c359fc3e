"""Playbooks are data: YAML validated into a step graph.

A playbook has an id, a version, a trigger (which incidents start it) and
steps.  A step is one of five kinds:

``action``
    a registered action with arguments (strings may be sandboxed templates);
    optional ``foreach`` (an incident entity field: one call per value,
    ``{{ item }}``), ``timeout``, ``retries`` with exponential ``backoff``.
``parallel``
    starts its branch steps at once and continues when all have ended.
``condition``
    ``if`` (a sandboxed expression over the context), ``then``/``else`` branch.
``approval``
    waits for ``quorum`` distinct people holding one of ``roles``; ``timeout``
    with ``on_timeout`` as the escalation branch.

Control flow is a set of chains.  The main chain starts at the first step and
goes from each step to ``next`` (or, if absent, the following step in the file
that is not the head of some branch); a branch (parallel branch, then/else,
``on_failure`` compensation, ``on_timeout`` escalation) is a chain that ends
at a step without ``next``.  Validation checks unique refs, known targets, one
entry point, no cycles, every step in exactly one chain, known actions with
arguments fitting their signature, and the safety tier: a step whose action
writes to OT (or cuts a public service) must be guarded by an approval step
earlier on every path to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateSyntaxError

from playbooks.actions import ActionError, ActionRegistry
from playbooks.templating import compile_condition
from store.base import Store
from store.models import Alert, Incident, Severity


class PlaybookError(Exception):
    """A playbook is invalid or cannot run; the message names the file and step."""


ACTION = "action"
PARALLEL = "parallel"
CONDITION = "condition"
APPROVAL = "approval"
KINDS = (ACTION, PARALLEL, CONDITION, APPROVAL)

#: Step timeout when none is declared; it is also the lease after which a step whose worker died is retried.
DEFAULT_TIMEOUT = 300.0
DEFAULT_APPROVAL_TIMEOUT = 3600.0
MAX_FOREACH = 100
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_duration(value: Any, where: str) -> float:
    """Seconds from ``30``, ``2.5``, ``"500ms"``, ``"30s"``, ``"10m"``, ``"1h"``."""
    if isinstance(value, bool):
        raise PlaybookError(f"{where}: {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise PlaybookError(f"{where}: {value!r} is not a duration (e.g. 30, '30s', '10m', '1h')")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise PlaybookError(f"{where}: a duration must be positive, got {value!r}")
    return seconds


# triggers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Threshold:
    """A data threshold: at least ``count`` alerts, or events whose ``field`` is above ``above``, in ``window``."""

    count: int
    window: float
    field: str | None = None
    above: float | None = None

    def reached(self, incident: Incident, alert: Alert, store: Store | None) -> bool:
        if self.field is None:
            if store is None:  # no store: the incident's own alert count over its whole span
                span = (incident.last_event_time - incident.first_event_time).total_seconds()
                return incident.alert_count >= self.count and span <= self.window
            since = alert.event_time - timedelta(seconds=self.window)
            alerts = store.list_alerts(incident_id=incident.id, limit=10_000)
            in_window = {a.id for a in alerts if since <= a.event_time <= alert.event_time} | {alert.id}
            return len(in_window) >= self.count
        if store is None:
            return False
        since = alert.event_time - timedelta(seconds=self.window)
        ids = [eid for a in store.list_alerts(incident_id=incident.id, limit=10_000) for eid in a.event_ids]
        ids.extend(alert.event_ids)
        over = 0
        for event in store.get_events(list(dict.fromkeys(ids))):
            if not since <= event.timestamp <= alert.event_time:
                continue
            value = event.get(self.field)
            try:
                if value is not None and self.above is not None and float(value) > self.above:
                    over += 1
            except (TypeError, ValueError):
                continue  # a non-numeric value is not over any number
        return over >= self.count


@dataclass(frozen=True)
class Trigger:
    """Which incidents start a playbook: every listed criterion must hold (empty lists match anything)."""

    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    min_severity: Severity = Severity.LOW
    sectors: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    min_security_level: int = 0
    threshold: Threshold | None = None

    def matches(self, incident: Incident, alert: Alert, store: Store | None = None) -> bool:
        if incident.severity < self.min_severity:
            return False
        entities = incident.entities
        if self.sectors and not _overlap(self.sectors, entities.get("asset.sector", ())):
            return False
        if self.agencies and not _overlap(self.agencies, entities.get("asset.agency", ())):
            return False
        if self.assets and not _overlap(self.assets, (*entities.get("asset.id", ()), *entities.get("asset.name", ()))):
            return False
        if self.min_security_level:
            levels = [int(v) for v in entities.get("asset.security_level", ()) if str(v).isdigit()]
            if not levels or max(levels) < self.min_security_level:
                return False
        if self.threshold is not None and not self.threshold.reached(incident, alert, store):
            return False
        if not self.rules and not self.tags:
            return True
        if self.rules and (alert.rule_id in self.rules or alert.rule_title in self.rules):
            return True
        tags = {t.lower() for t in (*incident.tags, *alert.tags)}
        # a trigger tag also matches its sub-techniques: attack.t1110 matches attack.t1110.001
        return any(t.lower() == have or have.startswith(t.lower() + ".") for t in self.tags for have in tags)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> Trigger:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise PlaybookError(f"{where}: 'trigger' must be a mapping")
        known = {"rules", "tags", "min_severity", "sectors", "agencies", "assets", "min_security_level", "threshold"}
        unknown = set(raw) - known
        if unknown:
            raise PlaybookError(f"{where}: trigger: unknown key(s) {', '.join(sorted(unknown))}")
        threshold = None
        if raw.get("threshold") is not None:
            t = raw["threshold"]
            if not isinstance(t, Mapping) or "count" not in t or "window" not in t:
                raise PlaybookError(
                    f"{where}: trigger.threshold needs 'count' and 'window' (and optionally field/above)"
                )
            if ("field" in t) != ("above" in t):
                raise PlaybookError(f"{where}: trigger.threshold: 'field' and 'above' go together")
            try:
                threshold = Threshold(
                    count=int(t["count"]),
                    window=parse_duration(t["window"], f"{where}: trigger.threshold.window"),
                    field=str(t["field"]) if "field" in t else None,
                    above=float(t["above"]) if "above" in t else None,
                )
            except (TypeError, ValueError) as exc:
                raise PlaybookError(f"{where}: trigger.threshold: {exc}") from exc
        try:
            return cls(
                rules=_strs(raw.get("rules")),
                tags=_strs(raw.get("tags")),
                min_severity=Severity.parse(str(raw.get("min_severity", "low"))),
                sectors=_strs(raw.get("sectors")),
                agencies=_strs(raw.get("agencies")),
                assets=_strs(raw.get("assets")),
                min_security_level=int(raw.get("min_security_level", 0)),
                threshold=threshold,
            )
        except (TypeError, ValueError) as exc:
            raise PlaybookError(f"{where}: trigger: {exc}") from exc


def _strs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _overlap(wanted: Iterable[str], have: Iterable[Any]) -> bool:
    lowered = {str(h).lower() for h in have}
    return any(w.lower() in lowered for w in wanted)


# steps ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Approval:
    roles: tuple[str, ...]
    quorum: int = 1
    description: str = ""
    impact: str = ""


@dataclass(frozen=True)
class Step:
    ref: str
    action: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    next: str | None = None
    on_failure: str | None = None
    retries: int = 0
    description: str = ""
    kind: str = ACTION
    timeout: float | None = None
    backoff: float = 1.0
    foreach: str | None = None
    branches: tuple[str, ...] = ()
    condition: str | None = None
    then: str | None = None
    otherwise: str | None = None
    approval: Approval | None = None
    on_timeout: str | None = None
    line: int = 0

    @property
    def effective_timeout(self) -> float:
        if self.timeout is not None:
            return self.timeout
        return DEFAULT_APPROVAL_TIMEOUT if self.kind == APPROVAL else DEFAULT_TIMEOUT

    def backoff_seconds(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
        return self.backoff * 2 ** (attempt - 1)

    def branch_heads(self) -> list[tuple[str, str]]:
        """(label, ref) of the chains this step starts, failure handlers included."""
        out = [(f"parallel[{i}]", ref) for i, ref in enumerate(self.branches)]
        out += [(label, ref) for label, ref in (("then", self.then), ("else", self.otherwise)) if ref]
        out += [
            (label, ref) for label, ref in (("on_failure", self.on_failure), ("on_timeout", self.on_timeout)) if ref
        ]
        return out


@dataclass(frozen=True)
class Playbook:
    id: str
    name: str
    version: str
    trigger: Trigger
    steps: tuple[Step, ...]
    description: str = ""
    source: str = ""
    #: ref -> the ref that follows it in its chain (None: the chain ends there); computed by validation
    chain_next: Mapping[str, str | None] = field(default_factory=dict, compare=False)
    #: ref -> the approval step refs that come before it on its path (guards)
    guards: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def entry(self) -> Step:
        return self.steps[0]

    def step(self, ref: str) -> Step:
        for step in self.steps:
            if step.ref == ref:
                return step
        raise PlaybookError(f"{self.source}: playbook {self.id!r} has no step {ref!r}")

    def where(self, step: Step) -> str:
        line = f":{step.line}" if step.line else ""
        return f"{self.source}{line}: step {step.ref!r}"

    def successor(self, step: Step, failed: bool) -> Step | None:
        """Where the chain goes after ``step``: its failure handler on failure, else the next step in its chain."""
        if failed:
            return self.step(step.on_failure) if step.on_failure else None
        ref = self.chain_next.get(step.ref)
        return self.step(ref) if ref else None

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], registry: ActionRegistry, source: str = "<string>", collect: bool = False
    ) -> Playbook:
        """Parse and validate; raises the first error (``PlaybookErrors`` with all of them when ``collect``)."""
        errors: list[PlaybookError] = []
        where = source
        pid = _req_str(data, "id", where)
        trigger = Trigger.from_dict(data.get("trigger"), where)
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise PlaybookError(f"{where}: 'steps' must be a non-empty list")
        lines = getattr(data, "step_lines", None) or {}
        steps = []
        for i, raw in enumerate(raw_steps):
            line = lines.get(i, 0)
            swhere = f"{where}{':' + str(line) if line else ''}: step #{i + 1}"
            try:
                steps.append(_parse_step(raw, swhere, line))
            except PlaybookError as exc:
                if not collect:
                    raise
                errors.append(exc)
        playbook = cls(
            id=pid,
            name=str(data.get("name", pid)),
            version=str(data.get("version", "1")),
            trigger=trigger,
            steps=tuple(steps),
            description=str(data.get("description", "")),
            source=source,
        )
        if errors:
            raise PlaybookErrors(errors)
        return playbook.validate(registry, collect=collect)

    def validate(self, registry: ActionRegistry, collect: bool = False) -> Playbook:
        """Check the graph and the actions; returns the playbook with its chains computed."""
        errors: list[PlaybookError] = []

        def fail(message: str) -> None:
            if not collect:
                raise PlaybookError(message)
            errors.append(PlaybookError(message))

        refs = [s.ref for s in self.steps]
        seen: set[str] = set()
        for step in self.steps:
            if step.ref in seen:
                fail(f"{self.where(step)}: step ref {step.ref!r} is used twice")
            seen.add(step.ref)
        heads: set[str] = set()
        for step in self.steps:
            links = [("next", step.next), *step.branch_heads()]
            for label, target in links:
                if target is None or (label == "next" and target == "end"):
                    continue
                if target not in seen:
                    fail(f"{self.where(step)}: {label} {target!r} is not a step (steps: {', '.join(refs)})")
                elif label != "next":
                    heads.add(target)
            if step.kind == ACTION:
                try:
                    registry.get(step.action).check_args(step.args)
                except ActionError as exc:
                    fail(f"{self.where(step)}: {exc}")
                else:
                    _check_arg_types(self, step, registry, fail)
        if errors:
            raise PlaybookErrors(errors)
        targets = heads | {s.next for s in self.steps if s.next and s.next != "end"}
        if self.entry.ref in targets:
            fail(f"{self.where(self.entry)}: the entry step must not be a target of another step")
        in_branch = {s.ref for s in self.steps if s.ref in heads or _in_branch(self, s, heads)}
        chain_next: dict[str, str | None] = {}
        for i, step in enumerate(self.steps):
            if step.next is not None:
                chain_next[step.ref] = None if step.next == "end" else step.next
            elif step.ref in in_branch:
                chain_next[step.ref] = None  # a branch ends where it has no explicit next
            else:
                chain_next[step.ref] = next((s.ref for s in self.steps[i + 1 :] if s.ref not in in_branch), None)
        built = Playbook(
            self.id, self.name, self.version, self.trigger, self.steps, self.description, self.source, chain_next
        )
        try:
            guards = built._check_graph(registry)
        except PlaybookError as exc:
            fail(str(exc))
            raise PlaybookErrors(errors) from exc
        if errors:
            raise PlaybookErrors(errors)
        return Playbook(
            self.id,
            self.name,
            self.version,
            self.trigger,
            self.steps,
            self.description,
            self.source,
            chain_next,
            guards,
        )

    def _check_graph(self, registry: ActionRegistry) -> dict[str, tuple[str, ...]]:
        """Acyclic, every step in exactly one chain and reachable; returns each step's guarding approvals."""
        owner: dict[str, str] = {}
        guards: dict[str, tuple[str, ...]] = {}

        def walk(head: str, chain: str, path: list[str], approvals: tuple[str, ...]) -> None:
            ref: str | None = head
            while ref is not None:
                step = self.step(ref)
                if ref in path:
                    raise PlaybookError(f"{self.where(step)}: steps form a cycle: {' -> '.join([*path, ref])}")
                if ref in owner and owner[ref] != chain:
                    raise PlaybookError(
                        f"{self.where(step)}: the step is reached from two places ({owner[ref]} and {chain}); "
                        "copy it or restructure the branches"
                    )
                owner[ref] = chain
                guards[ref] = approvals
                path = [*path, ref]
                for label, target in step.branch_heads():
                    # a failure/timeout handler runs after the step failed, so the step's own approval does not guard it
                    inner = approvals + (
                        (ref,) if step.kind == APPROVAL and label not in ("on_failure", "on_timeout") else ()
                    )
                    walk(target, f"{ref}.{label}", path, inner)
                if step.kind == APPROVAL:
                    approvals = (*approvals, ref)
                ref = self.chain_next.get(ref)

        walk(self.entry.ref, "main", [], ())
        unreachable = [s.ref for s in self.steps if s.ref not in owner]
        if unreachable:
            raise PlaybookError(f"{self.source}: steps not reachable from the entry: {', '.join(unreachable)}")
        for step in self.steps:
            if step.kind == ACTION and registry.get(step.action).impact.needs_approval and not guards[step.ref]:
                raise PlaybookError(
                    f"{self.where(step)}: action {step.action!r} has impact {registry.get(step.action).impact.value}: "
                    "it must be preceded by an approval step on every path (it also always runs a dry-run first)"
                )
        return guards

    def guarded(self, step: Step, registry: ActionRegistry) -> bool:
        return step.kind == ACTION and registry.get(step.action).impact.needs_approval


def _in_branch(playbook: Playbook, step: Step, heads: set[str]) -> bool:
    """True when ``step`` is reached by ``next`` from a branch head (so its chain ends with it by default)."""
    by_next = {s.next: s for s in playbook.steps if s.next and s.next != "end"}
    seen: set[str] = set()
    current = step
    while current.ref in by_next and current.ref not in seen:
        seen.add(current.ref)
        current = by_next[current.ref]
        if current.ref in heads:
            return True
    return False


def _check_arg_types(playbook: Playbook, step: Step, registry: ActionRegistry, fail: Any) -> None:
    """Literal (non-template) arguments must fit the declared type now, not at 3 a.m. during an incident."""
    spec = registry.get(step.action)
    for name, value in step.args.items():
        ptype = spec.parameters[name][0]
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            continue  # checked after rendering
        if ptype in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float | str)):
            fail(f"{playbook.where(step)}: argument {name!r} must be a {ptype.__name__}, got {value!r}")
        elif ptype in (int, float) and isinstance(value, str):
            try:
                ptype(value)
            except ValueError:
                fail(f"{playbook.where(step)}: argument {name!r} must be a {ptype.__name__}, got {value!r}")
        elif ptype is bool and not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            fail(f"{playbook.where(step)}: argument {name!r} must be true or false, got {value!r}")
        elif ptype is str and isinstance(value, Mapping | list):
            fail(f"{playbook.where(step)}: argument {name!r} must be a string, got {type(value).__name__}")


_STEP_KEYS = {
    "ref", "action", "args", "next", "on_failure", "retries", "description", "timeout", "backoff", "foreach",
    "parallel", "if", "then", "else", "approval", "on_timeout",
}  # fmt: skip


def _parse_step(raw: Any, where: str, line: int) -> Step:
    if not isinstance(raw, Mapping):
        raise PlaybookError(f"{where}: not a mapping")
    ref = _req_str(raw, "ref", where)
    where = f"{where} ({ref!r})"
    if not _REF.match(ref) or ref == "end":
        raise PlaybookError(f"{where}: ref must be 1-64 letters, digits, '_', '.', '-' (and not 'end')")
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise PlaybookError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kinds = [
        k
        for k, key in ((ACTION, "action"), (PARALLEL, "parallel"), (CONDITION, "if"), (APPROVAL, "approval"))
        if key in raw
    ]
    if len(kinds) != 1:
        raise PlaybookError(f"{where}: a step has exactly one of 'action', 'parallel', 'if', 'approval'")
    kind = kinds[0]
    args = raw.get("args") or {}
    if not isinstance(args, Mapping):
        raise PlaybookError(f"{where}: 'args' must be a mapping")
    if args and kind != ACTION:
        raise PlaybookError(f"{where}: only action steps take 'args'")
    retries = raw.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise PlaybookError(f"{where}: 'retries' must be an integer 0-10")
    if retries and kind != ACTION:
        raise PlaybookError(f"{where}: only action steps take 'retries'")
    timeout = parse_duration(raw["timeout"], f"{where}: timeout") if raw.get("timeout") is not None else None
    backoff = parse_duration(raw.get("backoff", 1), f"{where}: backoff")
    branches: tuple[str, ...] = ()
    if kind == PARALLEL:
        value = raw["parallel"]
        if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, str) for v in value):
            raise PlaybookError(f"{where}: 'parallel' must list at least two step refs")
        if len(set(value)) != len(value):
            raise PlaybookError(f"{where}: 'parallel' lists a step twice")
        branches = tuple(value)
    condition = then = otherwise = None
    if kind == CONDITION:
        condition = str(raw["if"])
        try:
            compile_condition(condition)
        except TemplateSyntaxError as exc:
            raise PlaybookError(f"{where}: 'if' is not a valid expression: {exc}") from exc
        then, otherwise = raw.get("then"), raw.get("else")
        if not then:
            raise PlaybookError(f"{where}: a condition needs 'then'")
    elif "then" in raw or "else" in raw:
        raise PlaybookError(f"{where}: 'then'/'else' belong to an 'if' step")
    approval = None
    if kind == APPROVAL:
        spec = raw["approval"]
        if not isinstance(spec, Mapping):
            raise PlaybookError(f"{where}: 'approval' must be a mapping with roles, quorum, description")
        roles = _strs(spec.get("roles"))
        quorum = spec.get("quorum", 1)
        if not roles:
            raise PlaybookError(f"{where}: approval.roles must name at least one role")
        if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= 10:
            raise PlaybookError(f"{where}: approval.quorum must be an integer 1-10")
        approval = Approval(roles, quorum, str(spec.get("description", "")), str(spec.get("impact", "")))
    elif "on_timeout" in raw and kind != ACTION:
        raise PlaybookError(f"{where}: 'on_timeout' belongs to approval and action steps")
    foreach = raw.get("foreach")
    if foreach is not None and (kind != ACTION or not isinstance(foreach, str)):
        raise PlaybookError(f"{where}: 'foreach' takes an entity field name (e.g. source.ip) on an action step")
    for key in ("next", "on_failure", "on_timeout", "then", "else"):
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            raise PlaybookError(f"{where}: {key!r} must be a step ref")
    return Step(
        ref=ref,
        action=str(raw.get("action", "")) if kind == ACTION else "",
        args=dict(args),
        next=raw.get("next"),
        on_failure=raw.get("on_failure"),
        retries=retries,
        description=str(raw.get("description", "")),
        kind=kind,
        timeout=timeout,
        backoff=backoff,
        foreach=foreach,
        branches=branches,
        condition=condition,
        then=then,
        otherwise=otherwise,
        approval=approval,
        on_timeout=raw.get("on_timeout"),
        line=line,
    )


def _req_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PlaybookError(f"{where}: {key!r} is required and must be a non-empty string")
    return value


class PlaybookErrors(PlaybookError):
    """Several errors collected from one playbook or library (for the CLI and CI)."""

    def __init__(self, errors: Iterable[PlaybookError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of each step, so errors say file:line."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = _LineDict(loader.construct_mapping(node, deep=True))
    for key_node, value_node in node.value:
        if key_node.value == "steps" and isinstance(value_node, yaml.SequenceNode):
            mapping.step_lines = {i: item.start_mark.line + 1 for i, item in enumerate(value_node.value)}
    return mapping


class _LineDict(dict[Any, Any]):
    step_lines: dict[int, int]


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_file(path: Path, registry: ActionRegistry, collect: bool = False) -> Playbook:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise PlaybookError(f"{path}: cannot read playbook: {exc}") from exc
    if not isinstance(data, Mapping):
        raise PlaybookError(f"{path}: a playbook must be a YAML mapping")
    return Playbook.from_dict(data, registry, source=str(path), collect=collect)


class PlaybookLibrary:
    """Playbooks by id, loaded from YAML files."""

    def __init__(self, playbooks: Iterable[Playbook] = ()) -> None:
        self._by_id: dict[str, Playbook] = {}
        for playbook in playbooks:
            if playbook.id in self._by_id:
                raise PlaybookError(
                    f"{playbook.source}: playbook id {playbook.id!r} also in {self._by_id[playbook.id].source}"
                )
            self._by_id[playbook.id] = playbook

    def __iter__(self) -> Iterator[Playbook]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, playbook_id: str) -> Playbook:
        try:
            return self._by_id[playbook_id]
        except KeyError:
            raise PlaybookError(f"no playbook {playbook_id!r} in the library") from None

    @staticmethod
    def files(paths: Iterable[str | Path]) -> list[Path]:
        out: list[Path] = []
        for path in paths:
            path = Path(path)
            out.extend(sorted(path.rglob("*.yml")) + sorted(path.rglob("*.yaml")) if path.is_dir() else [path])
        return out

    @classmethod
    def load(cls, paths: Iterable[str | Path], registry: ActionRegistry, collect: bool = False) -> PlaybookLibrary:
        """Load every playbook; with ``collect`` gather all errors of all files into one PlaybookErrors."""
        playbooks = []
        errors: list[PlaybookError] = []
        for file in cls.files(paths):
            try:
                playbooks.append(load_file(file, registry, collect=collect))
            except PlaybookErrors as exc:
                if not collect:
                    raise
                errors.extend(exc.errors)
            except PlaybookError as exc:
                if not collect:
                    raise
                errors.append(exc)
        if errors:
            raise PlaybookErrors(errors)
        return cls(playbooks)


def to_dict(playbook: Playbook) -> dict[str, Any]:
    """The playbook as YAML-ready data that :meth:`Playbook.from_dict` reads back to the same graph."""
    steps: list[dict[str, Any]] = []
    for s in playbook.steps:
        row: dict[str, Any] = {"ref": s.ref}
        if s.description:
            row["description"] = s.description
        if s.kind == ACTION:
            row["action"] = s.action
            if s.args:
                row["args"] = dict(s.args)
            if s.foreach:
                row["foreach"] = s.foreach
            if s.retries:
                row["retries"] = s.retries
            if s.backoff != 1.0:
                row["backoff"] = s.backoff
        elif s.kind == PARALLEL:
            row["parallel"] = list(s.branches)
        elif s.kind == CONDITION:
            row["if"] = s.condition
            row["then"] = s.then
            if s.otherwise:
                row["else"] = s.otherwise
        elif s.approval is not None:
            row["approval"] = {
                "roles": list(s.approval.roles),
                "quorum": s.approval.quorum,
                "description": s.approval.description,
                "impact": s.approval.impact,
            }
        if s.timeout is not None:
            row["timeout"] = s.timeout
        following = playbook.chain_next.get(s.ref)
        row["next"] = following or "end"
        for key in ("on_failure", "on_timeout"):
            if getattr(s, key):
                row[key] = getattr(s, key)
        steps.append(row)
    t = playbook.trigger
    trigger: dict[str, Any] = {"min_severity": t.min_severity.label}
    for key in ("rules", "tags", "sectors", "agencies", "assets"):
        if getattr(t, key):
            trigger[key] = list(getattr(t, key))
    if t.min_security_level:
        trigger["min_security_level"] = t.min_security_level
    if t.threshold is not None:
        trigger["threshold"] = {"count": t.threshold.count, "window": t.threshold.window}
        if t.threshold.field is not None:
            trigger["threshold"] |= {"field": t.threshold.field, "above": t.threshold.above}
    out: dict[str, Any] = {"id": playbook.id, "name": playbook.name, "version": playbook.version}
    if playbook.description:
        out["description"] = playbook.description
    return {**out, "trigger": trigger, "steps": steps}


def default_library_path() -> Path:
    return Path(__file__).parent / "library"
