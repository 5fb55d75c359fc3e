"""Sigma rules for CitySOC: load rule packs, map their fields onto our schema, match events in-process.

:mod:`.loader` reads rule files into a :class:`LoadReport`; :mod:`.pipelines`
holds the pySigma processing pipeline that renames fields; :mod:`.matcher`
compiles rules into predicates and routes events to them with a :class:`RuleSet`.
"""

from detections.sigma.loader import (
    FileReport,
    LoadReport,
    Location,
    RuleEntry,
    RuleKind,
    RuleStatus,
    SigmaLoadError,
    find_rule_files,
    load_rule_text,
    load_rules,
)
from detections.sigma.matcher import (
    ROUTES,
    CompiledRule,
    LogsourceKey,
    RuleSet,
    RuleSetError,
    UnsupportedRuleError,
    compile_collection,
    compile_rule,
)
from detections.sigma.pipelines import citysoc_pipeline

__all__ = [
    "ROUTES",
    "CompiledRule",
    "FileReport",
    "LoadReport",
    "Location",
    "LogsourceKey",
    "RuleEntry",
    "RuleKind",
    "RuleSet",
    "RuleSetError",
    "RuleStatus",
    "SigmaLoadError",
    "UnsupportedRuleError",
    "citysoc_pipeline",
    "compile_collection",
    "compile_rule",
    "find_rule_files",
    "load_rule_text",
    "load_rules",
]
