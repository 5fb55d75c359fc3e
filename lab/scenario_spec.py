"""Attack scenarios as data: ``lab/scenarios/*.yml`` parsed into checked, immutable specifications.

A scenario names its ATT&CK / ATT&CK-for-ICS techniques, the benign background
it runs in (hours, sources, rate scale), when the attack starts, the detections
it must raise (rule ids of the pack, or ``anomaly:<model>``) and its steps.
Each step has an offset from the attack start (``at``), a technique and a kind
from :mod:`lab.attacks` with that kind's parameters.  The records a step makes
are the scenario's ground truth: every one of them is malicious, labelled
``<scenario>:<technique>``; everything else is benign.

:func:`load_scenarios` collects every problem of every file (with file and
step) before it raises, as the rule-pack and playbook loaders do.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from lab import attacks, scada
from lab.city import City
from lab.telemetry import SOURCES, Rates, Record, sort_records

SCENARIO_DIR = Path(__file__).parent / "scenarios"
#: The simulated day every scenario starts on: Monday 16 November 2026, 00:00 UTC (07:00 in Hanoi).
DAY = datetime(2026, 11, 16, tzinfo=timezone.utc)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


class ScenarioError(Exception):
    """A scenario file is invalid; the message lists every problem with its file and step."""


def duration(value: Any, where: str) -> timedelta:
    """``90s``, ``15m``, ``1.5h``, ``250ms`` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ScenarioError(f"{where}: {value!r} is not a duration such as 90s, 15m or 2h")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class Step:
    at: timedelta
    technique: str
    kind: str
    params: Mapping[str, Any]
    where: str


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    techniques: tuple[str, ...]
    expected: tuple[str, ...]
    hours: float
    sources: tuple[str, ...] | None
    rate_scale: float
    attack_at: timedelta
    steps: tuple[Step, ...]
    path: Path

    @property
    def start(self) -> datetime:
        return DAY

    @property
    def attack_start(self) -> datetime:
        return DAY + self.attack_at

    def rates(self) -> Rates:
        return Rates().scaled(self.rate_scale)

    def scada_attacks(self) -> list[scada.Attack]:
        """The process attacks of the scenario, as :mod:`lab.scada` step indices."""
        out = []
        for s in self.steps:
            if s.kind == "scada_process":
                begin = self.attack_at + s.at
                out.append(
                    scada.Attack(
                        str(s.params["attack"]),
                        int(begin / scada.STEP),
                        max(1, int(timedelta(hours=float(s.params["hours"])) / scada.STEP)),
                    )
                )
        return out

    def attack_records(self, city: City, seed: int) -> list[Record]:
        """The labelled malicious records of every step (deterministic for a seed)."""
        out: list[Record] = []
        for index, s in enumerate(self.steps):
            rng = random.Random(zlib.crc32(f"{seed}:{self.name}:{index}".encode()))
            ctx = attacks.StepContext(city, rng, self.attack_start + s.at, f"{self.name}:{s.technique}")
            try:
                out.extend(attacks.run_step(s.kind, ctx, s.params))
            except attacks.StepError as exc:
                raise ScenarioError(f"{s.where}: {exc}") from exc
        return sort_records(out)


def _parse(path: Path, doc: Any, errors: list[str]) -> Scenario | None:
    if not isinstance(doc, Mapping):
        errors.append(f"{path}: expected a mapping")
        return None
    before = len(errors)
    name = str(doc.get("name") or "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        errors.append(f"{path}: name {name!r} must be lower-case words joined by '-'")
    if name and path.stem != name:
        errors.append(f"{path}: the file must be named after the scenario ({name}.yml)")
    for key in ("title", "description"):
        if not doc.get(key):
            errors.append(f"{path}: missing {key}")
    techniques = tuple(str(t) for t in doc.get("techniques") or ())
    if not techniques:
        errors.append(f"{path}: no ATT&CK techniques")
    errors.extend(f"{path}: technique {t!r} is not an ATT&CK id (T1234, T1234.001)" for t in techniques
                  if not _TECHNIQUE.match(t))  # fmt: skip
    expected = tuple(str(e) for e in doc.get("expected") or ())
    if not expected:
        errors.append(f"{path}: 'expected' lists no detection (rule ids or anomaly:<model>)")
    background = doc.get("background") or {}
    hours = float(background.get("hours", 2))
    sources = background.get("sources")
    if sources is not None:
        unknown = [s for s in sources if s not in SOURCES and s != "scada"]
        if unknown:
            errors.append(f"{path}: background.sources: unknown {', '.join(map(str, unknown))}")
    scale = float(background.get("rate_scale", 1.0))
    try:
        attack_at = duration(doc.get("attack_at", "1h"), f"{path}: attack_at")
    except ScenarioError as exc:
        errors.append(str(exc))
        attack_at = timedelta(hours=1)
    steps = []
    for i, raw in enumerate(doc.get("steps") or ()):
        where = f"{path}: steps[{i}]"
        if not isinstance(raw, Mapping):
            errors.append(f"{where}: not a mapping")
            continue
        params = {k: v for k, v in raw.items() if k not in ("at", "technique", "kind")}
        technique = str(raw.get("technique", ""))
        if technique not in techniques:
            errors.append(f"{where}: technique {technique!r} is not among the scenario's techniques")
        try:
            at = duration(raw.get("at", 0), f"{where}: at")
            checked = attacks.check_params(str(raw.get("kind")), params, where)
        except (ScenarioError, attacks.StepError) as exc:
            errors.append(str(exc))
            continue
        if attack_at + at >= timedelta(hours=hours):
            errors.append(f"{where}: starts after the background ends ({hours} h)")
        steps.append(Step(at, technique, str(raw["kind"]), checked, where))
    if not steps:
        errors.append(f"{path}: no steps")
    if len(errors) > before:
        return None
    return Scenario(
        name, str(doc["title"]), str(doc["description"]), techniques, expected, hours,
        tuple(sources) if sources is not None else None, scale, attack_at, tuple(steps), path,
    )  # fmt: skip


def load_scenarios(paths: Iterable[Path] | None = None) -> dict[str, Scenario]:
    """Every scenario file (default: ``lab/scenarios/*.yml``), by name; all problems are raised together."""
    files = sorted(paths) if paths is not None else sorted(SCENARIO_DIR.glob("*.yml"))
    errors: list[str] = []
    out: dict[str, Scenario] = {}
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        scenario = _parse(path, doc, errors)
        if scenario is None:
            continue
        if scenario.name in out:
            errors.append(f"{path}: scenario {scenario.name!r} is defined twice")
            continue
        out[scenario.name] = scenario
    if errors:
        raise ScenarioError(f"{len(errors)} problem(s) in the scenarios:\n" + "\n".join(errors))
    return out
