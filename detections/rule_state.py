"""Run-time rule state that detection engineers change without restarting the engine.

Two things live under ``$CITYSOC_HOME`` and are shared by every process (collector, detection
workers, console):

* ``rule_state.json`` -- the ids of **disabled** rules, with who disabled them, when and why;
* ``rule_exceptions/*.yml`` -- **exceptions**: Sigma filters (meta filters, the format of
  :mod:`detections.pack`) naming the rules they apply to and the events they exclude, typically
  made from an incident an analyst judged a false positive.  A filter may carry an ``expires``
  time (custom attribute): then it is a suppression window for that rule and entity.

:class:`RuleGate` implements :class:`detections.engine.RuleGate`: the engine asks it whether a
rule may alert on an event.  The gate re-reads both when they change (checked at most once per
``interval`` seconds), so a rule disabled in the console goes quiet in the running engine within
a second or so.  A broken exception file is logged and skipped (one bad file must not stop
detection); the console refuses to write one in the first place.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sigma.filters import SigmaFilter
from sigma.rule import SigmaDetections, SigmaRule

from detections.errors import DetectionError
from detections.sigma.loader import RuleKind, RuleStatus, load_rules
from detections.sigma.matcher import MatchContext, Predicate, compile_rule
from detections.sigma.pipelines import citysoc_pipeline
from store.event import Event, format_ts, parse_ts
from store.registry import home

log = logging.getLogger(__name__)

STATE_FILE = "rule_state.json"
EXCEPTIONS_DIR = "rule_exceptions"


class RuleStateError(DetectionError):
    """The rule state file or an exception file cannot be read or written; the message names the file."""


def state_path(root: Path | None = None) -> Path:
    return (root or home()) / STATE_FILE


def exceptions_dir(root: Path | None = None) -> Path:
    return (root or home()) / EXCEPTIONS_DIR


# ---------------------------------------------------------------- disabled rules


@dataclass(frozen=True)
class Disabled:
    """Why a rule is off."""

    rule_id: str
    by: str
    at: datetime
    reason: str = ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path``: two console workers changing the state do not lose an update."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_disabled(path: Path) -> dict[str, Disabled]:
    """The disabled rules recorded in ``path`` (none when the file does not exist)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RuleStateError(f"{path}: cannot read the rule state: {exc}") from exc
    items = doc.get("disabled") if isinstance(doc, dict) else None
    if not isinstance(items, dict):
        raise RuleStateError(f"{path}: expected an object with a 'disabled' object of rule ids")
    out: dict[str, Disabled] = {}
    for rule_id, meta in items.items():
        if not isinstance(meta, dict):
            raise RuleStateError(f"{path}: disabled.{rule_id} must be an object")
        try:
            at = parse_ts(str(meta.get("at")))
        except ValueError as exc:
            raise RuleStateError(f"{path}: disabled.{rule_id}.at: {exc}") from exc
        out[str(rule_id)] = Disabled(str(rule_id), str(meta.get("by", "")), at, str(meta.get("reason", "")))
    return out


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)  # readers see the old or the new file, never half of one
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def set_disabled(
    path: Path, rule_id: str, disabled: bool, by: str, reason: str = "", at: datetime | None = None
) -> bool:
    """Disable or enable one rule; False when it was in that state already."""
    with _locked(path):
        current = read_disabled(path)
        if disabled == (rule_id in current):
            return False
        if disabled:
            current[rule_id] = Disabled(rule_id, by, at or datetime.now(timezone.utc), reason)
        else:
            del current[rule_id]
        doc = {
            "disabled": {
                d.rule_id: {"by": d.by, "at": format_ts(d.at), "reason": d.reason}
                for d in sorted(current.values(), key=lambda d: d.rule_id)
            }
        }
        try:
            _write_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise RuleStateError(f"{path}: cannot write the rule state: {exc}") from exc
    return True


# ---------------------------------------------------------------- exceptions (Sigma filters)


@dataclass(frozen=True)
class RuleException:
    """One exception: a Sigma filter file and what it does."""

    id: str
    path: Path
    title: str
    rules: tuple[str, ...]
    #: the compiled filter condition: True means the event still reaches the rule
    keep: Predicate
    expires: datetime | None = None
    description: str = ""
    created_by: str = ""
    source: Mapping[str, Any] | None = None

    def active(self, now: datetime) -> bool:
        return self.expires is None or now < self.expires

    def applies(self, rule_id: str) -> bool:
        return rule_id in self.rules

    def excludes(self, rule_id: str, event: Event, now: datetime) -> bool:
        return self.applies(rule_id) and self.active(now) and not self.keep(MatchContext(event))


def _expires(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        return parse_ts(str(value))
    except ValueError as exc:
        raise RuleStateError(f"{where}: expires: {exc}") from exc


def compile_filter(sigma_filter: SigmaFilter) -> Predicate:
    """The filter's condition over CitySOC field names, compiled by the engine's matcher."""
    carrier = SigmaRule(
        title=sigma_filter.title,
        logsource=sigma_filter.logsource,
        detection=SigmaDetections(
            detections=copy.deepcopy(sigma_filter.filter.detections), condition=list(sigma_filter.filter.condition)
        ),
    )
    citysoc_pipeline().apply(carrier)
    return compile_rule(carrier).predicate


def load_exceptions(directory: Path) -> tuple[list[RuleException], list[str]]:
    """Every exception file in ``directory`` (or that one file), and the problems of those that cannot be used."""
    if not directory.exists():
        return [], []
    report = load_rules(directory)
    out: list[RuleException] = []
    problems: list[str] = []
    for entry in report.entries:
        if entry.kind is not RuleKind.FILTER or not isinstance(entry.rule, SigmaFilter):
            problems.append(f"{entry.location}: not a Sigma filter ({entry.reason or entry.status.value})")
            continue
        if entry.status is RuleStatus.INVALID:
            problems.append(f"{entry.location}: {entry.reason}")
            continue
        sigma_filter = entry.rule
        try:
            keep = compile_filter(sigma_filter)
            attrs = sigma_filter.custom_attributes or {}
            expires = _expires(attrs.get("expires"), str(entry.location))
        except (DetectionError, ValueError) as exc:
            problems.append(f"{entry.location}: {exc}")
            continue
        out.append(
            RuleException(
                id=Path(entry.location.path).stem,
                path=Path(entry.location.path),
                title=str(sigma_filter.title),
                rules=tuple(ref if isinstance(ref, str) else str(ref.reference) for ref in sigma_filter.filter.rules),
                keep=keep,
                expires=expires,
                description=str(sigma_filter.description or ""),
                created_by=str(attrs.get("created-by", "")),
                source=attrs.get("source") if isinstance(attrs.get("source"), dict) else None,
            )
        )
    return out, problems


# ---------------------------------------------------------------- the engine's gate


def _signature(path: Path, directory: Path) -> tuple[Any, ...]:
    """Changes when the state file or any exception file changes."""
    parts: list[Any] = []
    try:
        st = path.stat()
        parts.append((st.st_mtime_ns, st.st_size))
    except FileNotFoundError:
        parts.append(None)
    if directory.is_dir():
        for item in sorted(directory.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                st = item.stat()
                parts.append((item.name, st.st_mtime_ns, st.st_size))
    return tuple(parts)


class RuleGate:
    """Whether a rule may alert on an event: not disabled and no active exception excludes the event."""

    def __init__(
        self,
        root: Path | None = None,
        interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.state_file = state_path(root)
        self.exceptions_dir = exceptions_dir(root)
        self.interval = interval
        self.monotonic = monotonic
        self.clock = clock
        self.disabled: frozenset[str] = frozenset()
        self.exceptions: tuple[RuleException, ...] = ()
        self._checked = float("-inf")
        self._signature: tuple[Any, ...] | None = None
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Re-read the state when it changed (at most once per ``interval`` unless ``force``)."""
        now = self.monotonic()
        if not force and now - self._checked < self.interval:
            return
        self._checked = now
        signature = _signature(self.state_file, self.exceptions_dir)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self.disabled = frozenset(read_disabled(self.state_file))
        except RuleStateError:
            # keep the last good state: a half-edited file must not re-enable every disabled rule
            log.exception("rule state not reloaded")
        exceptions, problems = load_exceptions(self.exceptions_dir)
        for problem in problems:
            log.error("rule exception skipped: %s", problem)
        self.exceptions = tuple(exceptions)

    def allows(self, rule_id: str, event: Event) -> bool:
        self.refresh()
        if rule_id in self.disabled:
            return False
        if not self.exceptions:
            return True
        now = self.clock()
        return not any(exc.excludes(rule_id, event, now) for exc in self.exceptions)
