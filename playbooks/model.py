"""Playbooks are data: YAML validated into a step graph.

A playbook has an id, a version, a trigger (which incidents start it) and
steps.  Each step names a registered action, its arguments (strings may be
sandboxed templates over the incident) and where to go next or on failure.
Validation checks unique step refs, references that exist, one entry point,
no cycles, known actions and arguments that fit each action's signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from playbooks.actions import ActionRegistry
from store.models import Alert, Incident, Severity


class PlaybookError(Exception):
    """A playbook is invalid or cannot run; the message names the file and step."""


@dataclass(frozen=True)
class Trigger:
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    min_severity: Severity = Severity.LOW

    def matches(self, incident: Incident, alert: Alert) -> bool:
        if incident.severity < self.min_severity:
            return False
        if not self.rules and not self.tags:
            return True
        if self.rules and (alert.rule_id in self.rules or alert.rule_title in self.rules):
            return True
        tags = {t.lower() for t in (*incident.tags, *alert.tags)}
        # a trigger tag also matches its sub-techniques: attack.t1110 matches attack.t1110.001
        return any(t.lower() == have or have.startswith(t.lower() + ".") for t in self.tags for have in tags)


@dataclass(frozen=True)
class Step:
    ref: str
    action: str
    args: Mapping[str, Any] = field(default_factory=dict)
    next: str | None = None
    on_failure: str | None = None
    retries: int = 0
    description: str = ""


@dataclass(frozen=True)
class Playbook:
    id: str
    name: str
    version: str
    trigger: Trigger
    steps: tuple[Step, ...]
    description: str = ""
    source: str = ""

    @property
    def entry(self) -> Step:
        return self.steps[0]

    def step(self, ref: str) -> Step:
        for step in self.steps:
            if step.ref == ref:
                return step
        raise PlaybookError(f"{self.source}: playbook {self.id!r} has no step {ref!r}")

    def successor(self, step: Step, failed: bool) -> Step | None:
        """Where the run goes after ``step``: ``on_failure`` on failure, else ``next`` or the following step."""
        if failed:
            return self.step(step.on_failure) if step.on_failure else None
        if step.next:
            return None if step.next == "end" else self.step(step.next)
        index = self.steps.index(step)
        following = self.steps[index + 1] if index + 1 < len(self.steps) else None
        # a step reached only as a failure handler is not part of the normal sequence
        handlers = {s.on_failure for s in self.steps if s.on_failure}
        while following is not None and following.ref in handlers:
            index += 1
            following = self.steps[index + 1] if index + 1 < len(self.steps) else None
        return following

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: ActionRegistry, source: str = "<string>") -> Playbook:
        where = source
        try:
            pid = _req_str(data, "id", where)
            raw_trigger = data.get("trigger") or {}
            if not isinstance(raw_trigger, Mapping):
                raise PlaybookError(f"{where}: 'trigger' must be a mapping")
            trigger = Trigger(
                rules=tuple(str(r) for r in raw_trigger.get("rules", ())),
                tags=tuple(str(t) for t in raw_trigger.get("tags", ())),
                min_severity=Severity.parse(str(raw_trigger.get("min_severity", "low"))),
            )
            raw_steps = data.get("steps")
            if not isinstance(raw_steps, list) or not raw_steps:
                raise PlaybookError(f"{where}: 'steps' must be a non-empty list")
            steps = []
            for i, raw in enumerate(raw_steps):
                swhere = f"{where}: step #{i + 1}"
                if not isinstance(raw, Mapping):
                    raise PlaybookError(f"{swhere}: not a mapping")
                args = raw.get("args") or {}
                if not isinstance(args, Mapping):
                    raise PlaybookError(f"{swhere}: 'args' must be a mapping")
                retries = raw.get("retries", 0)
                if not isinstance(retries, int) or not 0 <= retries <= 10:
                    raise PlaybookError(f"{swhere}: 'retries' must be an integer 0-10")
                steps.append(
                    Step(
                        ref=_req_str(raw, "ref", swhere),
                        action=_req_str(raw, "action", swhere),
                        args=dict(args),
                        next=raw.get("next"),
                        on_failure=raw.get("on_failure"),
                        retries=retries,
                        description=str(raw.get("description", "")),
                    )
                )
            playbook = cls(
                id=pid,
                name=str(data.get("name", pid)),
                version=str(data.get("version", "1")),
                trigger=trigger,
                steps=tuple(steps),
                description=str(data.get("description", "")),
                source=source,
            )
        except ValueError as exc:
            raise PlaybookError(f"{where}: {exc}") from exc
        playbook.validate(registry)
        return playbook

    def validate(self, registry: ActionRegistry) -> None:
        refs = [s.ref for s in self.steps]
        seen: set[str] = set()
        for ref in refs:
            if ref in seen:
                raise PlaybookError(f"{self.source}: step ref {ref!r} is used twice")
            seen.add(ref)
        targets: set[str] = set()
        for step in self.steps:
            for label, target in (("next", step.next), ("on_failure", step.on_failure)):
                if target is None or (label == "next" and target == "end"):
                    continue
                if target not in seen:
                    raise PlaybookError(f"{self.source}: step {step.ref!r}: {label} {target!r} is not a step")
                targets.add(target)
            try:
                registry.get(step.action).check_args(step.args)
            except Exception as exc:
                raise PlaybookError(f"{self.source}: step {step.ref!r}: {exc}") from exc
        if self.entry.ref in targets:
            raise PlaybookError(
                f"{self.source}: the entry step {self.entry.ref!r} must not be a target of another step"
            )
        self._check_acyclic()
        self._check_reachable()

    def _edges(self, step: Step) -> list[Step]:
        out = [s for s in (self.successor(step, failed=False), self.successor(step, failed=True)) if s]
        return out

    def _check_acyclic(self) -> None:
        state: dict[str, int] = {}

        def visit(step: Step, path: list[str]) -> None:
            mark = state.get(step.ref, 0)
            if mark == 1:
                cycle = " -> ".join([*path, step.ref])
                raise PlaybookError(f"{self.source}: steps form a cycle: {cycle}")
            if mark == 2:
                return
            state[step.ref] = 1
            for nxt in self._edges(step):
                visit(nxt, [*path, step.ref])
            state[step.ref] = 2

        visit(self.entry, [])

    def _check_reachable(self) -> None:
        reached: set[str] = set()
        todo = [self.entry]
        while todo:
            step = todo.pop()
            if step.ref in reached:
                continue
            reached.add(step.ref)
            todo.extend(self._edges(step))
        unreachable = [s.ref for s in self.steps if s.ref not in reached]
        if unreachable:
            raise PlaybookError(f"{self.source}: steps not reachable from the entry: {', '.join(unreachable)}")


def _req_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PlaybookError(f"{where}: {key!r} is required and must be a non-empty string")
    return value


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

    @classmethod
    def load(cls, paths: Iterable[str | Path], registry: ActionRegistry) -> PlaybookLibrary:
        playbooks = []
        for path in paths:
            path = Path(path)
            files = sorted(path.rglob("*.yml")) + sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
            for file in files:
                try:
                    data = yaml.safe_load(file.read_text(encoding="utf-8"))
                except (OSError, yaml.YAMLError) as exc:
                    raise PlaybookError(f"{file}: cannot read playbook: {exc}") from exc
                if not isinstance(data, Mapping):
                    raise PlaybookError(f"{file}: a playbook must be a YAML mapping")
                playbooks.append(Playbook.from_dict(data, registry, source=str(file)))
        return cls(playbooks)


def default_library_path() -> Path:
    return Path(__file__).parent / "library"
