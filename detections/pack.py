"""Loading a set of rule files into what the stream engine runs.

Combines the Sigma loader (single-event rules, compiled to matchers and
routed by logsource) with the correlation evaluator and the Sigma filters
(meta filters: exclusions applied to the rules they name or to every rule of
their logsource), and keeps the full load report so nothing is silently dropped.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.rule import SigmaDetections, SigmaRule

from detections.correlation import Correlator, WindowState, rule_key, unsupported_reason
from detections.errors import DetectionError
from detections.sigma.loader import LoadReport, RuleKind, RuleStatus
from detections.sigma.loader import load_rules as load_report
from detections.sigma.matcher import CompiledRule, RuleSet, UnsupportedRuleError, compile_rule
from detections.sigma.pipelines import citysoc_pipeline
from store.registry import home

RULES_DIR = Path(__file__).parent / "rules"


def custom_rules_dir() -> Path:
    """Rules written by detection engineers in the console (``$CITYSOC_HOME/rules``)."""
    return home() / "rules"


def default_rule_paths() -> list[Path]:
    """The built-in smart-city pack, plus the custom rules directory when it exists."""
    custom = custom_rules_dir()
    return [RULES_DIR, custom] if custom.is_dir() else [RULES_DIR]


@dataclass(frozen=True)
class LoadedRules:
    report: LoadReport
    compiled: tuple[CompiledRule, ...]
    correlations: tuple[SigmaCorrelationRule, ...]
    ruleset: RuleSet
    correlator: Correlator
    #: filter title -> ids of the rules it was applied to
    filters: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def names(self) -> dict[str, str]:
        """Rule id -> Sigma ``name``, for correlations that reference rules by name."""
        return {rule.rule_id: rule.name for rule in self.compiled if rule.name}

    def counts(self) -> dict[str, int]:
        """loaded / unsupported / invalid, counting correlations the stream evaluates as loaded."""
        counts = {status.value: n for status, n in self.report.counts().items()}
        evaluated = {rule_key(rule) for rule in self.correlations}
        moved = sum(
            1
            for entry in self.report.unsupported
            if entry.kind is RuleKind.CORRELATION and entry.rule is not None and rule_key(entry.rule) in evaluated
        )
        moved += sum(
            1 for entry in self.report.unsupported if entry.kind is RuleKind.FILTER and entry.title in self.filters
        )
        counts[RuleStatus.LOADED.value] += moved
        counts[RuleStatus.UNSUPPORTED.value] -= moved
        return counts


class FilterError(DetectionError):
    """A Sigma filter cannot be applied to a rule it names (the message names both)."""


def _mapped_filter(sigma_filter: SigmaFilter) -> SigmaFilter:
    """The filter with its detection fields mapped by the CitySOC pipeline, like the rules it joins."""
    carrier = SigmaRule(
        title=sigma_filter.title,
        logsource=sigma_filter.logsource,
        detection=SigmaDetections(
            detections=copy.deepcopy(sigma_filter.filter.detections), condition=list(sigma_filter.filter.condition)
        ),
    )
    citysoc_pipeline().apply(carrier)
    mapped = dataclasses.replace(sigma_filter.filter, detections=carrier.detection.detections)
    return dataclasses.replace(sigma_filter, filter=mapped)


def apply_filters(
    report: LoadReport, compiled: tuple[CompiledRule, ...]
) -> tuple[tuple[CompiledRule, ...], dict[str, tuple[str, ...]]]:
    """Rules with every applicable Sigma filter joined to their condition, as pySigma joins them.

    A filter that names a rule but cannot be compiled with it raises :class:`FilterError` naming
    the filter file and line: an exclusion that silently does not apply would hide nothing and
    alert on everything it was written to exclude.
    """
    filters = [e for e in report.unsupported if e.kind is RuleKind.FILTER and isinstance(e.rule, SigmaFilter)]
    if not filters:
        return compiled, {}
    sources = {
        e.compiled.rule_id: e.rule for e in report.loaded if e.compiled is not None and isinstance(e.rule, SigmaRule)
    }
    out = list(compiled)
    applied: dict[str, tuple[str, ...]] = {}
    for entry in filters:
        assert isinstance(entry.rule, SigmaFilter)
        mapped = _mapped_filter(entry.rule)
        targets: list[str] = []
        for position, rule in enumerate(out):
            source = sources.get(rule.rule_id)
            if source is None or not mapped._should_apply_on_rule(source):
                continue
            joined = mapped.apply_on_rule(copy.deepcopy(source))
            assert isinstance(joined, SigmaRule)
            try:
                out[position] = compile_rule(joined)
            except (UnsupportedRuleError, SigmaError) as exc:
                raise FilterError(f"{entry.location}: filter {entry.title!r} on rule {rule.title!r}: {exc}") from exc
            sources[rule.rule_id] = joined  # a second filter joins the first one's result
            targets.append(rule.rule_id)
        applied[str(entry.title)] = tuple(targets)
    return tuple(out), applied


def load_rules(paths: Iterable[str | Path], state: WindowState | None = None) -> LoadedRules:
    """Load rule files; ``state`` persists correlation windows (see :class:`detections.correlation.Correlator`)."""
    report = load_report(list(paths))
    compiled = tuple(entry.compiled for entry in report.loaded if entry.compiled is not None)
    compiled, applied = apply_filters(report, compiled)
    correlations = tuple(rule for rule in report.correlations if unsupported_reason(rule) is None)
    return LoadedRules(report, compiled, correlations, RuleSet(compiled), Correlator(correlations, state), applied)
