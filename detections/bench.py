"""``citysoc bench detect``: single-event rule evaluation speed with 1, 100 and all SigmaHQ Windows rules.

Runs in one process on one thread, so events/s is per core.  The workload is the Windows
events of SigmaHQ's regression samples (``../shared/data/sigma-regression``; parsed once, before
timing, by the EVTX-as-JSON parser), cycled to the requested count.  The reference measured in
the same run is the previous evaluator: every routed rule's predicate on every event
(:meth:`RuleSet.candidates_for`), without the field-anchor index; the two must find the same
matches, which the benchmark checks.  Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from collectors.base import RawRecord
from collectors.parsers.evtx import WindowsEventParser
from detections.errors import DetectionError
from detections.pack import load_rules
from detections.sigma.matcher import CompiledRule, MatchContext, RuleSet
from store.event import Event


class BenchError(DetectionError):
    """The benchmark inputs are missing."""


@dataclass(frozen=True)
class BenchRow:
    rules: int
    events: int
    indexed_eps: float
    reference_eps: float
    matches: int


def regression_events(regression: Path) -> list[Event]:
    """The Windows events of the regression samples' ``.json`` renderings."""
    from detections.hunt import _json_documents  # the hunt's reader of concatenated JSON documents

    parser = WindowsEventParser()
    events: list[Event] = []
    for path in sorted(regression.rglob("*.json")):
        for offset, doc in _json_documents(path.read_text(encoding="utf-8")) or ():
            events += parser.parse(RawRecord(doc, f"file:{path}", str(offset)))
    if not events:
        raise BenchError(f"no Windows events under {regression}: is ../shared/data/sigma-regression checked out?")
    return events


def _rate(events: Sequence[Event], run: Callable[[Event], int]) -> tuple[float, int]:
    matches = 0
    start = time.perf_counter()
    for event in events:
        matches += run(event)
    return len(events) / (time.perf_counter() - start), matches


def _indexed(ruleset: RuleSet) -> Callable[[Event], int]:
    def run(event: Event) -> int:
        return len(ruleset.match(event))

    return run


def _reference(ruleset: RuleSet) -> Callable[[Event], int]:
    def run(event: Event) -> int:
        ctx = MatchContext(event)
        return sum(1 for rule in ruleset.candidates_for(ruleset._router.logsources(ctx)) if rule.predicate(ctx))

    return run


def run_bench(
    sigma_windows: Path, regression: Path, events: int = 20_000, reference_events: int = 2_000
) -> tuple[list[BenchRow], int, float]:
    """Rows for 1, 100 and all rules; peak RSS in KiB; seconds spent loading the pack."""
    base = regression_events(regression)
    start = time.perf_counter()
    loaded = load_rules([sigma_windows])
    load_seconds = time.perf_counter() - start
    compiled: list[CompiledRule] = list(loaded.compiled)
    workload = [base[i % len(base)] for i in range(events)]
    reference_workload = workload[:reference_events]
    rows = []
    for count in (1, 100, len(compiled)):
        ruleset = RuleSet(compiled[:count])
        for event in base:  # warm the per-logsource indexes, as a running stream has
            ruleset.match(event)
        indexed, matches = _rate(workload, _indexed(ruleset))
        reference, reference_matches = _rate(reference_workload, _reference(ruleset))
        indexed_check = sum(len(ruleset.match(e)) for e in reference_workload)
        if indexed_check != reference_matches:
            raise BenchError(f"indexed evaluation found {indexed_check} matches, the reference {reference_matches}")
        rows.append(BenchRow(count, events, indexed, reference, matches))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rows, peak_kib, load_seconds
