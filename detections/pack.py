"""Loading a set of rule files into what the stream engine runs.

Combines the Sigma loader (single-event rules, compiled to matchers and
routed by logsource) with the correlation evaluator, and keeps the full
load report so nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sigma.correlations import SigmaCorrelationRule

from detections.correlation import Correlator, rule_key, unsupported_reason
from detections.sigma.loader import LoadReport, RuleKind, RuleStatus
from detections.sigma.loader import load_rules as load_report
from detections.sigma.matcher import CompiledRule, RuleSet

RULES_DIR = Path(__file__).parent / "rules"


def default_rule_paths() -> list[Path]:
    """The built-in smart-city pack."""
    return [RULES_DIR]


@dataclass(frozen=True)
class LoadedRules:
    report: LoadReport
    compiled: tuple[CompiledRule, ...]
    correlations: tuple[SigmaCorrelationRule, ...]
    ruleset: RuleSet
    correlator: Correlator

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
        counts[RuleStatus.LOADED.value] += moved
        counts[RuleStatus.UNSUPPORTED.value] -= moved
        return counts


def load_rules(paths: Iterable[str | Path]) -> LoadedRules:
    report = load_report(list(paths))
    compiled = tuple(entry.compiled for entry in report.loaded if entry.compiled is not None)
    correlations = tuple(rule for rule in report.correlations if unsupported_reason(rule) is None)
    return LoadedRules(report, compiled, correlations, RuleSet(compiled), Correlator(correlations))
