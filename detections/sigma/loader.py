"""Load Sigma rule files into a report of what will run, what cannot run, and why.

Every YAML document of every rule file gets exactly one :class:`RuleEntry`:

* ``loaded`` -- parsed by pySigma, mapped onto the CitySOC schema by the
  processing pipeline (:func:`detections.sigma.pipelines.citysoc_pipeline`) and
  compiled by :func:`detections.sigma.matcher.compile_rule`;
* ``unsupported`` -- valid Sigma that the matcher cannot evaluate (correlation
  rules for now, filters, value placeholders ...), with the exact reason;
* ``invalid`` -- a YAML or pySigma error, with the file and line.

Nothing is dropped silently.  Batch loading (:func:`load_rules`) collects every
problem for the CLI and CI; with ``collect_errors=False`` -- the runtime path --
the first invalid rule raises :class:`SigmaLoadError`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import (
    SigmaAuthorError,
    SigmaConditionError,
    SigmaCorrelationRuleError,
    SigmaDateError,
    SigmaDescriptionError,
    SigmaDetectionError,
    SigmaError,
    SigmaFalsePositivesError,
    SigmaFieldsError,
    SigmaFilterError,
    SigmaIdentifierError,
    SigmaLevelError,
    SigmaLicenseError,
    SigmaLogsourceError,
    SigmaModifiedError,
    SigmaModifierError,
    SigmaNameError,
    SigmaReferencesError,
    SigmaRelatedError,
    SigmaRuleLocation,
    SigmaScopeError,
    SigmaStatusError,
    SigmaTagError,
    SigmaTaxonomyError,
    SigmaTitleError,
    SigmaValueError,
)
from sigma.filters import SigmaFilter
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from yaml.nodes import MappingNode, Node, ScalarNode

from detections.errors import DetectionError
from detections.incidents import GROUP_BY_ATTRIBUTE, GroupByError, parse_group_by
from detections.sigma.matcher import CompiledRule, UnsupportedRuleError, compile_rule
from detections.sigma.pipelines import citysoc_pipeline
from store.schema import lookup

RULE_SUFFIXES = (".yml", ".yaml")

CORRELATION_REASON = "correlation rules are not evaluated yet"
FILTER_REASON = "Sigma filter (meta filter): applied by detections.pack to the rules it names, not a rule of its own"


class SigmaLoadError(DetectionError):
    """A rule file cannot be loaded; the message starts with ``file:line``."""

    def __init__(self, location: Location, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"{location}: {reason}")


class RuleStatus(enum.Enum):
    LOADED = "loaded"
    UNSUPPORTED = "unsupported"
    INVALID = "invalid"


class RuleKind(enum.Enum):
    """What a YAML document holds; ``file`` stands for a file that yielded no document."""

    RULE = "rule"
    CORRELATION = "correlation"
    FILTER = "filter"
    FILE = "file"


@dataclass(frozen=True)
class Location:
    """Where a rule or an error is: file path (or text origin) and 1-based line."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


@dataclass(frozen=True)
class RuleEntry:
    """The outcome for one YAML document."""

    status: RuleStatus
    location: Location
    kind: RuleKind = RuleKind.RULE
    title: str | None = None
    rule_id: str | None = None
    reason: str | None = None
    #: the parsed rule (after the pipeline for loaded rules), kept for correlations and tooling
    rule: SigmaRule | SigmaCorrelationRule | SigmaFilter | None = field(default=None, repr=False, compare=False)
    compiled: CompiledRule | None = field(default=None, repr=False, compare=False)
    #: fields of a loaded rule that are not in the CitySOC schema: our events never carry them
    unmapped_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileReport:
    path: str
    entries: tuple[RuleEntry, ...]


@dataclass(frozen=True)
class LoadReport:
    files: tuple[FileReport, ...] = ()

    @property
    def entries(self) -> tuple[RuleEntry, ...]:
        return tuple(entry for report in self.files for entry in report.entries)

    def with_status(self, status: RuleStatus) -> tuple[RuleEntry, ...]:
        return tuple(entry for entry in self.entries if entry.status is status)

    @property
    def loaded(self) -> tuple[RuleEntry, ...]:
        return self.with_status(RuleStatus.LOADED)

    @property
    def unsupported(self) -> tuple[RuleEntry, ...]:
        return self.with_status(RuleStatus.UNSUPPORTED)

    @property
    def invalid(self) -> tuple[RuleEntry, ...]:
        return self.with_status(RuleStatus.INVALID)

    @property
    def correlations(self) -> tuple[SigmaCorrelationRule, ...]:
        """Parsed correlation rules, for the correlation engine (their references are not resolved)."""
        return tuple(entry.rule for entry in self.entries if isinstance(entry.rule, SigmaCorrelationRule))

    def counts(self) -> dict[RuleStatus, int]:
        counter = Counter(entry.status for entry in self.entries)
        return {status: counter[status] for status in RuleStatus}

    def reasons(self, status: RuleStatus) -> Counter[str]:
        return Counter(entry.reason or "" for entry in self.entries if entry.status is status)

    def summary(self) -> str:
        counts = self.counts()
        return (
            f"{len(self.entries)} rule documents in {len(self.files)} files: "
            + ", ".join(f"{counts[status]} {status.value}" for status in RuleStatus)
        )


# ---------------------------------------------------------------- YAML with line numbers


_YAMLBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster


class _RuleYAMLLoader(_YAMLBase):
    """Safe loader that rejects duplicate keys, with their line (pySigma's own loader omits it)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep)
        return mapping


class _Document(NamedTuple):
    data: Any
    line: int
    #: 1-based lines of mapping keys: ("id",), ("detection", "selection", "Image|endswith") ...
    keys: dict[tuple[str, ...], int]


def _key_lines(node: Node, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if not isinstance(node, MappingNode):
        return
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode):
            path = (*prefix, str(key_node.value))
            out.setdefault(path, key_node.start_mark.line + 1)
            # Only detection and correlation are worth descending into: errors point there.
            if path[0] in ("detection", "correlation", "filter"):
                _key_lines(value_node, path, out)


def _documents(text: str) -> list[_Document]:
    loader = _RuleYAMLLoader(text)
    try:
        docs: list[_Document] = []
        while loader.check_node():
            node = loader.get_node()
            keys: dict[tuple[str, ...], int] = {}
            _key_lines(node, (), keys)
            docs.append(_Document(loader.construct_document(node), node.start_mark.line + 1, keys))
        return docs
    finally:
        loader.dispose()


# ---------------------------------------------------------------- errors -> locations

#: The rule key an error class is about, so its line can be reported.
_ERROR_KEYS: dict[type[SigmaError], str] = {
    SigmaIdentifierError: "id",
    SigmaTitleError: "title",
    SigmaNameError: "name",
    SigmaTaxonomyError: "taxonomy",
    SigmaRelatedError: "related",
    SigmaStatusError: "status",
    SigmaDescriptionError: "description",
    SigmaLicenseError: "license",
    SigmaReferencesError: "references",
    SigmaTagError: "tags",
    SigmaAuthorError: "author",
    SigmaDateError: "date",
    SigmaModifiedError: "modified",
    SigmaFieldsError: "fields",
    SigmaFalsePositivesError: "falsepositives",
    SigmaLevelError: "level",
    SigmaScopeError: "scope",
    SigmaLogsourceError: "logsource",
    SigmaCorrelationRuleError: "correlation",
    SigmaFilterError: "filter",
    SigmaDetectionError: "detection",
    SigmaModifierError: "detection",
    SigmaValueError: "detection",
}

_UNKNOWN_MODIFIER = re.compile(r"Unknown modifier '([^']+)'")


def _message(error: BaseException) -> str:
    """The error text without pySigma's appended `` in <path>`` (we report the location ourselves)."""
    text = Exception.__str__(error)
    return text or type(error).__name__


def _error_line(error: SigmaError, doc: _Document) -> int:
    message = _message(error)
    if (unknown := _UNKNOWN_MODIFIER.search(message)) is not None:
        for path, line in doc.keys.items():
            if path[0] == "detection" and f"|{unknown[1]}" in path[-1]:
                return line
    if isinstance(error, SigmaConditionError) and ("detection", "condition") in doc.keys:
        return doc.keys[("detection", "condition")]
    for cls in type(error).__mro__:
        key = _ERROR_KEYS.get(cls)
        if key is not None and (key,) in doc.keys:
            return doc.keys[(key,)]
    if error.source is not None and error.source.line is not None:
        return error.source.line
    return doc.line


# ---------------------------------------------------------------- one file


def _text_attr(doc: Any, key: str) -> str | None:
    value = doc.get(key) if isinstance(doc, dict) else None
    return None if value is None else str(value)


def _entry_for_document(origin: str, doc: _Document, pipeline: ProcessingPipeline) -> RuleEntry:
    data = doc.data
    where = Location(origin, doc.line)
    title, rule_id = _text_attr(data, "title"), _text_attr(data, "id")
    if not isinstance(data, dict):
        return RuleEntry(
            RuleStatus.INVALID, where, title=title, rule_id=rule_id,
            reason=f"a Sigma rule is a YAML mapping, this document is a {type(data).__name__}",
        )
    if "action" in data:
        return RuleEntry(
            RuleStatus.UNSUPPORTED, where, title=title, rule_id=rule_id,
            reason=f"Sigma v1 collection action {data['action']!r} is not supported; write complete rule documents",
        )
    kind = RuleKind.CORRELATION if "correlation" in data else RuleKind.FILTER if "filter" in data else RuleKind.RULE
    try:
        collection = SigmaCollection.from_dicts(
            [data], collect_errors=True, source=SigmaRuleLocation(Path(origin), doc.line),
            collect_filters=True, resolve_references=False,
        )
    except SigmaError as exc:  # a few pySigma checks raise even when collecting errors
        return RuleEntry(RuleStatus.INVALID, Location(origin, _error_line(exc, doc)), kind, title, rule_id,
                         reason=_message(exc))
    # a section of the wrong YAML type; pySigma's correlation parser even hits an unbound local (NameError)
    except (AttributeError, TypeError, KeyError, NameError) as exc:
        return RuleEntry(RuleStatus.INVALID, where, kind, title, rule_id,
                         reason=f"pySigma could not read the rule structure: {type(exc).__name__}: {exc}")
    parsed: SigmaRule | SigmaCorrelationRule | SigmaFilter = (collection.rules or collection.filters)[0]
    title = parsed.title or title
    rule_id = str(parsed.id) if parsed.id is not None else rule_id
    errors = collection.errors or parsed.errors
    if errors:
        return RuleEntry(
            RuleStatus.INVALID, Location(origin, _error_line(errors[0], doc)), kind, title, rule_id,
            reason="; ".join(dict.fromkeys(_message(e) for e in errors)), rule=parsed,
        )
    if GROUP_BY_ATTRIBUTE in parsed.custom_attributes:
        problem = _group_by_problem(parsed)
        if problem is not None:
            line = doc.keys.get((GROUP_BY_ATTRIBUTE,), doc.line)
            return RuleEntry(RuleStatus.INVALID, Location(origin, line), kind, title, rule_id,
                             reason=f"rule {title!r}: {problem}", rule=parsed)
    if isinstance(parsed, SigmaCorrelationRule):
        return RuleEntry(RuleStatus.UNSUPPORTED, where, kind, title, rule_id, CORRELATION_REASON, rule=parsed)
    if isinstance(parsed, SigmaFilter):
        return RuleEntry(RuleStatus.UNSUPPORTED, where, kind, title, rule_id, FILTER_REASON, rule=parsed)
    return _compile_entry(parsed, where, doc, pipeline, title, rule_id)


def _group_by_problem(parsed: SigmaRule | SigmaCorrelationRule | SigmaFilter) -> str | None:
    """Why the ``incident-group-by`` attribute is wrong, or None (a bad one would silently group per attacker)."""
    if isinstance(parsed, SigmaFilter):
        return f"{GROUP_BY_ATTRIBUTE} applies to rules and correlations, not to filters"
    try:
        parse_group_by(parsed.custom_attributes[GROUP_BY_ATTRIBUTE])
    except GroupByError as exc:
        return str(exc)
    return None


def _compile_entry(
    rule: SigmaRule, where: Location, doc: _Document, pipeline: ProcessingPipeline, title: str | None,
    rule_id: str | None,
) -> RuleEntry:
    try:
        pipeline.apply(rule)
    except SigmaError as exc:
        return RuleEntry(RuleStatus.UNSUPPORTED, where, RuleKind.RULE, title, rule_id,
                         reason=f"field mapping failed: {_message(exc)}", rule=rule)
    try:
        compiled = compile_rule(rule)
    except UnsupportedRuleError as exc:
        return RuleEntry(RuleStatus.UNSUPPORTED, where, RuleKind.RULE, title, rule_id, exc.reason, rule=rule)
    except SigmaError as exc:  # the condition is parsed only now
        return RuleEntry(RuleStatus.INVALID, Location(where.path, _error_line(exc, doc)), RuleKind.RULE, title,
                         rule_id, reason=_message(exc), rule=rule)
    unmapped = tuple(name for name in compiled.fields_used if lookup(name) is None)
    return RuleEntry(RuleStatus.LOADED, where, RuleKind.RULE, title, rule_id, rule=rule, compiled=compiled,
                     unmapped_fields=unmapped)


def _load_text(text: str, origin: str, pipeline: ProcessingPipeline) -> FileReport:
    try:
        docs = _documents(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        return FileReport(origin, (RuleEntry(RuleStatus.INVALID, Location(origin, line), RuleKind.FILE,
                                             reason=f"YAML syntax error: {problem}"),))
    except yaml.YAMLError as exc:
        return FileReport(origin, (RuleEntry(RuleStatus.INVALID, Location(origin), RuleKind.FILE,
                                             reason=f"YAML error: {exc}"),))
    entries = tuple(_entry_for_document(origin, doc, pipeline) for doc in docs if doc.data is not None)
    if not entries:
        entries = (RuleEntry(RuleStatus.INVALID, Location(origin), RuleKind.FILE,
                             reason="the file holds no YAML document"),)
    return FileReport(origin, entries)


def _load_file(path: Path, pipeline: ProcessingPipeline) -> FileReport:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return FileReport(str(path), (RuleEntry(RuleStatus.INVALID, Location(str(path)), RuleKind.FILE,
                                                reason=f"not UTF-8 text: {exc}"),))
    except OSError as exc:  # an unreadable pack is an installation problem, not a bad rule
        raise SigmaLoadError(Location(str(path)), f"cannot read the rule file: {exc.strerror or exc}") from exc
    return _load_text(text, str(path), pipeline)


# ---------------------------------------------------------------- public API


def find_rule_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Rule files under ``paths`` (files, or directories searched recursively), sorted; hidden folders skipped."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.extend(
                sorted(
                    candidate
                    for candidate in path.rglob("*")
                    if candidate.suffix in RULE_SUFFIXES
                    and candidate.is_file()
                    and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise SigmaLoadError(Location(str(path)), "no such rule file or directory")
    return found


def _finish(files: list[FileReport], collect_errors: bool) -> LoadReport:
    report = LoadReport(tuple(_flag_duplicate_ids(files)))
    invalid = report.invalid
    if invalid and not collect_errors:
        raise SigmaLoadError(invalid[0].location, invalid[0].reason or "invalid rule")
    return report


def _flag_duplicate_ids(files: list[FileReport]) -> Iterator[FileReport]:
    """A rule id names one rule: the second rule with an id is invalid (as in SigmaHQ's own checks)."""
    first: dict[str, Location] = {}
    for report in files:
        entries: list[RuleEntry] = []
        for entry in report.entries:
            rule_id = entry.rule_id
            if rule_id is not None and entry.status is not RuleStatus.INVALID:
                if rule_id in first:
                    entry = dataclasses.replace(
                        entry, status=RuleStatus.INVALID, compiled=None,
                        reason=f"duplicate rule id {rule_id}, first used at {first[rule_id]}",
                    )
                else:
                    first[rule_id] = entry.location
            entries.append(entry)
        yield FileReport(report.path, tuple(entries))


def load_rules(
    paths: str | Path | Iterable[str | Path],
    *,
    pipeline: ProcessingPipeline | None = None,
    collect_errors: bool = True,
) -> LoadReport:
    """Load every rule file under ``paths`` into a :class:`LoadReport`.

    ``pipeline`` defaults to :func:`citysoc_pipeline`; pass an empty ``ProcessingPipeline()``
    to keep Sigma's field names.  With ``collect_errors=False`` the first invalid rule raises
    :class:`SigmaLoadError` (unsupported rules are reported, not raised: they are valid Sigma).
    """
    active = pipeline if pipeline is not None else citysoc_pipeline()
    return _finish([_load_file(path, active) for path in find_rule_files(paths)], collect_errors)


def load_rule_text(
    text: str,
    origin: str = "<text>",
    *,
    pipeline: ProcessingPipeline | None = None,
    collect_errors: bool = True,
) -> LoadReport:
    """Load rules from a YAML string (one rule, or several documents); ``origin`` names it in locations."""
    active = pipeline if pipeline is not None else citysoc_pipeline()
    return _finish([_load_text(text, origin, active)], collect_errors)
