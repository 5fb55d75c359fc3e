"""Compile Sigma rules into in-process predicates and route each event to the rules that can apply.

:func:`compile_rule` walks a parsed rule's condition tree (``ConditionOR`` /
``AND`` / ``NOT`` over field/value and keyword expressions), the way pySigma
backends do, and turns it into one generated Python function per rule
(:mod:`detections.sigma.codegen`; ``compile_rule(rule, generated=False)`` builds
the equivalent nested closures, the reference the generator is tested against
and the fallback for a condition nested deeper than Python compiles).  All
per-value work happens at compile time: wildcard strings become ``==`` /
``startswith`` / ``endswith`` / ``in`` tests or precompiled regular expressions,
CIDRs become ``ipaddress`` networks.  A value the matcher cannot evaluate raises
:class:`UnsupportedRuleError` with the exact reason, which the loader reports.

Matching semantics (Sigma specification v2, as pySigma and its SQLite backend read it):

* strings compare case-insensitively unless ``|cased``; ``*`` and ``?`` are wildcards;
* ``|re`` searches (unanchored) and is case-sensitive unless ``|i``;
* ``null`` matches an absent field, ``|exists`` tests presence;
* a keyword (a value without a field) is a substring search in ``message`` and ``event.original``;
* an array field matches when any element matches;
* numbers match numeric values and numeric strings (``EventID: 4688`` matches ``"4688"``);
* ``|fieldref`` compares two fields case-insensitively.

:class:`RuleSet` indexes compiled rules by their logsource and uses
:data:`ROUTES` to decide which logsources an event belongs to, so an event is
only evaluated against rules written for its kind of log.
"""

from __future__ import annotations

import ipaddress
import operator
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import SigmaCorrelationTimespan
from sigma.exceptions import SigmaError
from sigma.pipelines.common import windows_logsource_mapping
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaQueryExpression,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
    TimestampPart,
)

from detections.errors import DetectionError
from detections.incidents import GROUP_BY_ATTRIBUTE, GroupByError, parse_group_by
from detections.sigma.anchors import Clause, rule_anchors
from detections.sigma.codegen import (
    RECORD_FIELDS,
    AllOf,
    AnyOf,
    CallLeaf,
    Negation,
    Node,
    Presence,
    RawLeaf,
    StringTests,
    TextLeaf,
    generate,
)
from detections.sigma.index import AnchorIndex, route_key
from store.errors import EventValidationError
from store.event import Event, Scalar, parse_ts

if TYPE_CHECKING:
    from detections.sigma.loader import LoadReport

    _ContextBase = dict[str, "str | tuple[str, ...] | None"]
else:
    try:  # a dict whose __missing__ lower-cases text fields in C (detections/sigma/_hitmask.c)
        from detections.sigma._hitmask import LowerContext as _ContextBase
    except ImportError:  # pragma: no cover -- installed without a C compiler
        _ContextBase = dict


class LogsourceKey(NamedTuple):
    """A Sigma logsource as (product, category, service); ``None`` means "any"."""

    product: str | None = None
    category: str | None = None
    service: str | None = None

    def covers(self, other: LogsourceKey) -> bool:
        """Sigma containment: every attribute this logsource states is equal in ``other``."""
        return (
            (self.product is None or self.product == other.product)
            and (self.category is None or self.category == other.category)
            and (self.service is None or self.service == other.service)
        )


#: One way for an event to belong to a logsource: every field must hold one of the values
#: (compared as lower-case text).
RouteCondition = Mapping[str, tuple[str, ...]]

SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
SECURITY_CHANNEL = "Security"
POWERSHELL_CHANNELS = ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational")
POWERSHELL_CLASSIC_CHANNEL = "Windows PowerShell"

#: Sysmon event ids of the Sigma Windows categories, with extra EventData conditions where one id
#: carries several categories (event 12 is both a key creation and a key deletion).
SYSMON_CATEGORIES: dict[str, tuple[tuple[str, ...], RouteCondition]] = {
    "process_creation": (("1",), {}),
    "file_change": (("2",), {}),
    "network_connection": (("3",), {}),
    "sysmon_status": (("4", "16"), {}),
    "process_termination": (("5",), {}),
    "driver_load": (("6",), {}),
    "image_load": (("7",), {}),
    "create_remote_thread": (("8",), {}),
    "raw_access_thread": (("9",), {}),
    "process_access": (("10",), {}),
    "file_event": (("11",), {}),
    "registry_add": (("12",), {"winlog.event_data.EventType": ("CreateKey",)}),
    "registry_delete": (("12",), {"winlog.event_data.EventType": ("DeleteKey", "DeleteValue")}),
    "registry_event": (("12", "13", "14"), {}),
    "registry_set": (("13",), {}),
    "registry_rename": (("14",), {}),
    "create_stream_hash": (("15",), {}),
    "pipe_created": (("17", "18"), {}),
    "wmi_event": (("19", "20", "21"), {}),
    "dns_query": (("22",), {}),
    "file_delete": (("23", "26"), {}),
    "clipboard_capture": (("24",), {}),
    "process_tampering": (("25",), {}),
    "file_executable_detected": (("29",), {}),
    "sysmon_error": (("255",), {}),
}

#: Windows categories written by other channels than Sysmon: (channels, event ids).
WINDOWS_CHANNEL_CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "process_creation": ((SECURITY_CHANNEL,), ("4688",)),
    "ps_module": (POWERSHELL_CHANNELS, ("4103",)),
    "ps_script": (POWERSHELL_CHANNELS, ("4104",)),
    "ps_classic_start": ((POWERSHELL_CLASSIC_CHANNEL,), ("400",)),
    "ps_classic_provider_start": ((POWERSHELL_CLASSIC_CHANNEL,), ("600",)),
    "ps_classic_script": ((POWERSHELL_CLASSIC_CHANNEL,), ("800",)),
}


def _windows_routes() -> dict[LogsourceKey, tuple[RouteCondition, ...]]:
    routes: dict[LogsourceKey, tuple[RouteCondition, ...]] = {}
    for category, (ids, extra) in SYSMON_CATEGORIES.items():
        routes[LogsourceKey("windows", category)] = (
            {"event.dataset": ("windows.sysmon",), "winlog.event_id": ids, **extra},
            {"winlog.channel": (SYSMON_CHANNEL,), "winlog.event_id": ids, **extra},
        )
    for category, (channels, ids) in WINDOWS_CHANNEL_CATEGORIES.items():
        key = LogsourceKey("windows", category)
        routes[key] = (*routes.get(key, ()), {"winlog.channel": channels, "winlog.event_id": ids})
    # Service logsources are channels; pySigma's own table names them.
    for service, channel in windows_logsource_mapping.items():
        channels = (channel,) if isinstance(channel, str) else tuple(channel)
        routes[LogsourceKey("windows", None, service)] = (
            {"winlog.channel": channels},
            {"event.dataset": (f"windows.{service}",)},
        )
    return routes


#: Which logsources an event belongs to.  Each logsource lists alternative conditions on event
#: fields; the event belongs to it when one alternative holds entirely.  A rule receives the
#: event when its logsource covers one of these (a rule for ``product: windows`` covers
#: ``windows/process_creation``).  A new collector adds its ``event.dataset`` here.
ROUTES: dict[LogsourceKey, tuple[RouteCondition, ...]] = {
    LogsourceKey("citysoc", None, "camera"): ({"event.dataset": ("camera.platform",)},),
    LogsourceKey("citysoc", None, "mqtt"): ({"event.dataset": ("iot.mqtt",)},),
    LogsourceKey("zeek", None, "modbus"): ({"event.dataset": ("zeek.modbus", "zeek.modbus_detailed")},),
    LogsourceKey("zeek", None, "conn"): ({"event.dataset": ("zeek.conn",)},),
    LogsourceKey("zeek", None, "dnp3"): ({"event.dataset": ("zeek.dnp3", "zeek.dnp3_control", "zeek.dnp3_objects")},),
    LogsourceKey("zeek", None, "s7comm"): ({"event.dataset": ("zeek.s7comm", "zeek.s7comm_plus")},),
    LogsourceKey("zeek", None, "bacnet"): ({"event.dataset": ("zeek.bacnet",)},),
    LogsourceKey("zeek", None, "enip"): ({"event.dataset": ("zeek.enip", "zeek.cip")},),
    LogsourceKey("zeek", None, "dns"): ({"event.dataset": ("zeek.dns",)},),
    LogsourceKey("zeek", None, "http"): ({"event.dataset": ("zeek.http",)},),
    LogsourceKey("citysoc", None, "iot_platform"): ({"event.dataset": ("iot.platform",)},),
    # web server / API gateway access logs: SigmaHQ's webserver category and our operations-centre API rules
    LogsourceKey(None, "webserver", None): ({"event.dataset": ("web.access",)},),
    LogsourceKey("linux"): ({"host.os.type": ("linux",)},),
    LogsourceKey("linux", None, "syslog"): ({"event.dataset": ("syslog",)},),
    LogsourceKey("linux", None, "auth"): ({"event.dataset": ("linux.auth",)},),
    # sshd lines arrive in the syslog stream; the program name tells them apart.
    LogsourceKey("linux", None, "sshd"): tuple(
        {"event.dataset": ("syslog", "linux.auth"), program: ("sshd",)}
        for program in ("log.syslog.appname", "process.name", "event.provider")
    ),
    LogsourceKey("linux", None, "auditd"): ({"event.dataset": ("auditd.log",)},),
    LogsourceKey(None, "webserver"): ({"event.dataset": ("web.access",)},),
    LogsourceKey("suricata", None, "alert"): ({"event.dataset": ("suricata.alert",)},),
    LogsourceKey("suricata"): ({"event.module": ("suricata",)},),
    LogsourceKey(None, "dns"): ({"event.dataset": ("suricata.dns", "zeek.dns")},),
    LogsourceKey("zeek", None, "dns"): ({"event.dataset": ("zeek.dns",)},),
    LogsourceKey("zeek", None, "http"): ({"event.dataset": ("zeek.http",)},),
    LogsourceKey("zeek", None, "dnp3"): ({"event.dataset": ("zeek.dnp3", "zeek.dnp3_control", "zeek.dnp3_objects")},),
    LogsourceKey("zeek", None, "s7comm"): ({"event.dataset": ("zeek.s7comm", "zeek.s7comm_plus")},),
    LogsourceKey("zeek", None, "bacnet"): ({"event.dataset": ("zeek.bacnet",)},),
    LogsourceKey("zeek", None, "enip"): ({"event.dataset": ("zeek.enip", "zeek.cip")},),
    LogsourceKey("citysoc", None, "cef"): ({"event.dataset": ("cef",)},),
    LogsourceKey("citysoc", None, "iot_platform"): ({"event.dataset": ("iot.platform",)},),
    LogsourceKey("citysoc", None, "scada"): ({"event.dataset": ("scada.historian",)},),
    LogsourceKey("windows"): ({"host.os.type": ("windows",)},),
    **_windows_routes(),
}

#: Bound on the cache of routing decisions (distinct combinations of route-field values).
MAX_ROUTE_KEYS = 65_536

#: Fields a keyword (a detection value without a field) is searched in.
KEYWORD_FIELDS: tuple[str, ...] = ("message", "event.original")


class UnsupportedRuleError(DetectionError):
    """The rule is valid Sigma, but this matcher cannot evaluate it; ``reason`` says why."""

    def __init__(self, reason: str, title: str | None = None) -> None:
        self.reason = reason
        self.title = title
        super().__init__(f"rule {title!r}: {reason}" if title else reason)


class RuleSetError(DetectionError):
    """A rule set cannot be built (duplicate rule ids)."""


def _text(value: Scalar) -> str:
    """Event values as Sigma sees them: text, with booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


class MatchContext(_ContextBase):
    """One event under evaluation; as a mapping, field name -> the field's lower-cased text.

    A value is lower-cased on its first access (``__missing__``: the compiled base's for text
    fields and absent ones, :meth:`_lower_missing` for the rest, or for all of them when the
    extension is not built) and then shared by every rule evaluated on the event.  The context
    is itself the cache, so an event costs one allocation, and generated predicates read a
    field with one dict subscript (in C when cached).  Being a dict, a fresh context is falsy
    and unhashable: test it with ``is None``, never by truth.
    """

    __slots__ = ("event",)

    def __init__(self, event: Event) -> None:
        self.event = event  # the dict starts empty: no dict.__init__ call needed

    def raw(self, name: str) -> Scalar | tuple[Scalar, ...] | None:
        value: Scalar | tuple[Scalar, ...] | None = self.event.get(name)
        return value

    def lower(self, name: str) -> str | tuple[str, ...] | None:
        return self[name]

    def _lower_missing(self, name: str) -> str | tuple[str, ...] | None:
        """The field's lower-cased text (None when absent), kept in the context."""
        value = self.event.fields.get(name) if name not in RECORD_FIELDS else self.event.get(name)
        out: str | tuple[str, ...] | None
        if type(value) is str:
            out = value.lower()
        elif value is None:
            out = None
        elif isinstance(value, tuple):
            out = tuple(_text(item).lower() for item in value)
        else:
            out = _text(value).lower()
        self[name] = out
        return out

    if _ContextBase is dict:  # no compiled base: every first read takes the Python path
        __missing__ = _lower_missing


Predicate = Callable[[MatchContext], bool]
_T = TypeVar("_T")
TextTest = Callable[[str], bool]
ValueTest = Callable[[Scalar], bool]


@dataclass(frozen=True)
class CompiledRule:
    """A Sigma rule ready to run on events."""

    rule_id: str
    title: str
    level: str
    tags: tuple[str, ...]
    logsource: LogsourceKey
    fields_used: tuple[str, ...]
    #: the compiled condition; RuleSet calls it with one MatchContext shared by all rules of an event
    predicate: Predicate = field(repr=False, compare=False)
    name: str | None = None
    #: clauses of literal tests that all hold on every matching event (None: always evaluate); see anchors.py
    anchors: tuple[Clause, ...] | None = field(default=None, repr=False, compare=False)
    #: per-rule suppression window (custom attribute ``suppression: {timespan, group-by}``); 0 = none
    suppress_seconds: int = 0
    suppress_by: tuple[str, ...] = ()
    #: custom attribute ``incident-group-by`` (see :mod:`detections.incidents`); empty: the default grouping
    incident_group_by: tuple[str, ...] = ()

    def match(self, event: Event) -> bool:
        return self.predicate(MatchContext(event))


# ---------------------------------------------------------------- boolean combinators


def _any(tests: Sequence[Callable[[_T], bool]]) -> Callable[[_T], bool]:
    """The OR of ``tests`` (predicates on the context, or tests on one value)."""
    if len(tests) == 1:
        return tests[0]
    items = tuple(tests)

    def test(arg: _T) -> bool:
        # A plain loop: any() would build a generator per call, and this runs per rule per event.
        for t in items:  # noqa: SIM110
            if t(arg):
                return True
        return False

    return test


def _all(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    items = tuple(preds)

    def pred(ctx: MatchContext) -> bool:
        for p in items:  # noqa: SIM110 -- no generator per call, as in _any
            if not p(ctx):
                return False
        return True

    return pred


def _not(inner: Predicate) -> Predicate:
    return lambda ctx: not inner(ctx)


def _contains_test(needles: Sequence[str]) -> TextTest:
    if len(needles) == 1:
        needle = needles[0]
        return lambda text: needle in text
    items = tuple(needles)

    def test(text: str) -> bool:
        for needle in items:  # noqa: SIM110 -- no generator per call, as in _any
            if needle in text:
                return True
        return False

    return test


# ---------------------------------------------------------------- strings


def _string_parts(value: SigmaString) -> list[str | SpecialChars]:
    """Plain text runs and wildcards, adjacent text runs joined; placeholders are unsupported."""
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise UnsupportedRuleError(
                f"value placeholder %{part.name}% (expand modifier) has no value list in the CitySOC pipeline"
            )
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] = parts[-1] + part
        else:
            parts.append(part)
    return parts


def _string_tests(values: Sequence[SigmaString], cased: bool) -> StringTests:
    """OR-ed string values classified: set lookup, prefix/suffix tuples, substrings, then one regex."""
    fold: Callable[[str], str] = (lambda s: s) if cased else str.lower
    equal: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    needles: list[str] = []
    patterns: list[str] = []
    anything = False
    multi = SpecialChars.WILDCARD_MULTI
    for value in values:
        parts = _string_parts(value)
        texts = [p for p in parts if isinstance(p, str)]
        if not parts:
            equal.add("")
        elif len(parts) == 1 and isinstance(parts[0], str):
            equal.add(fold(parts[0]))
        elif parts == [multi]:
            anything = True
        elif len(parts) == 2 and parts[1] is multi and isinstance(parts[0], str):
            prefixes.append(fold(parts[0]))
        elif len(parts) == 2 and parts[0] is multi and isinstance(parts[1], str):
            suffixes.append(fold(parts[1]))
        elif len(parts) == 3 and parts[0] is multi and parts[2] is multi and len(texts) == 1:
            needles.append(fold(texts[0]))
        else:
            patterns.append(
                "".join(re.escape(fold(p)) if isinstance(p, str) else (".*" if p is multi else ".") for p in parts)
            )
    # Wildcards span line breaks: a "*" in a command-line rule must not stop at a newline.
    regex = re.compile("|".join(f"(?:{p})" for p in patterns), re.DOTALL) if patterns else None
    return StringTests(frozenset(equal), tuple(prefixes), tuple(suffixes), tuple(needles), regex, anything)


def _strings_test(values: Sequence[SigmaString], cased: bool) -> TextTest:
    """One closure for OR-ed string values (see :func:`_string_tests`)."""
    classified = _string_tests(values, cased)
    if classified.anything:
        return lambda text: True
    tests: list[TextTest] = []
    if classified.equal:
        tests.append(classified.equal.__contains__)
    if classified.prefixes:
        prefix_tuple = classified.prefixes
        tests.append(lambda text: text.startswith(prefix_tuple))
    if classified.suffixes:
        suffix_tuple = classified.suffixes
        tests.append(lambda text: text.endswith(suffix_tuple))
    if classified.needles:
        tests.append(_contains_test(classified.needles))
    regex = classified.regex
    if regex is not None:
        tests.append(lambda text: regex.fullmatch(text) is not None)
    return _any(tests)


# ---------------------------------------------------------------- leaves


def _lower_leaf(name: str, test: TextTest) -> Predicate:
    def pred(ctx: MatchContext) -> bool:
        value = ctx.lower(name)
        if type(value) is str:  # the common case first: this is the innermost loop
            return test(value)
        if value is None:
            return False
        return any(test(item) for item in value)

    return pred


def _raw_leaf(name: str, test: ValueTest) -> Predicate:
    def pred(ctx: MatchContext) -> bool:
        value = ctx.raw(name)
        if value is None:
            return False
        if isinstance(value, tuple):
            return any(test(item) for item in value)
        return test(value)

    return pred


def _as_number(value: Scalar) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except ValueError:
        return None


_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}

_TIMESTAMP_PART: dict[TimestampPart, Callable[[str], int]] = {
    TimestampPart.MINUTE: lambda text: parse_ts(text).minute,
    TimestampPart.HOUR: lambda text: parse_ts(text).hour,
    TimestampPart.DAY: lambda text: parse_ts(text).day,
    TimestampPart.WEEK: lambda text: parse_ts(text).isocalendar().week,
    TimestampPart.MONTH: lambda text: parse_ts(text).month,
    TimestampPart.YEAR: lambda text: parse_ts(text).year,
}


def _number_test(number: float) -> ValueTest:
    def test(value: Scalar) -> bool:
        as_number = _as_number(value)
        return as_number is not None and as_number == number

    return test


def _bool_test(expected: bool) -> ValueTest:
    text = "true" if expected else "false"

    def test(value: Scalar) -> bool:
        if isinstance(value, bool):
            return value is expected
        return isinstance(value, str) and value.lower() == text

    return test


def _regex(value: SigmaRegularExpression) -> re.Pattern[str]:
    flags = 0
    for flag in value.flags:
        flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
    return re.compile(str(value.regexp), flags)


def _regex_test(value: SigmaRegularExpression) -> ValueTest:
    regex = _regex(value)
    return lambda v: regex.search(_text(v)) is not None


def _cidr_test(value: SigmaCIDRExpression) -> ValueTest:
    network = value.network

    def test(v: Scalar) -> bool:
        if not isinstance(v, str):
            return False
        try:
            return ipaddress.ip_address(v) in network
        except ValueError:
            return False

    return test


def _compare_test(value: SigmaCompareExpression) -> ValueTest:
    compare = _COMPARE[value.op]
    bound = value.number.number

    def test(v: Scalar) -> bool:
        as_number = _as_number(v)
        return as_number is not None and compare(as_number, bound)

    return test


def _timestamp_part_test(value: SigmaTimestampPart) -> ValueTest:
    part = _TIMESTAMP_PART[value.timestamp_part]
    expected = value.number

    def test(v: Scalar) -> bool:
        if not isinstance(v, str):
            return False
        try:
            return part(v) == expected
        except EventValidationError:
            return False

    return test


def _null_pred(name: str, present_wanted: bool) -> Predicate:
    def pred(ctx: MatchContext) -> bool:
        value = ctx.raw(name)
        present = value is not None and value != ()
        return present is present_wanted

    return pred


def _fieldref_pred(name: str, ref: SigmaFieldReference) -> Predicate:
    compare: Callable[[str, str], bool]
    if ref.starts_with and ref.ends_with:
        compare = operator.contains
    elif ref.starts_with:
        compare = str.startswith
    elif ref.ends_with:
        compare = str.endswith
    else:
        compare = operator.eq
    other_name = ref.field

    def pred(ctx: MatchContext) -> bool:
        mine = ctx.lower(name)
        other = ctx.lower(other_name)
        if mine is None or other is None:
            return False
        mine_items = mine if isinstance(mine, tuple) else (mine,)
        other_items = other if isinstance(other, tuple) else (other,)
        return any(compare(a, b) for a in mine_items for b in other_items)

    return pred


def _flatten(values: Iterable[SigmaType]) -> Iterator[SigmaType]:
    """Expansions (windash, base64offset) are OR-ed alternatives, whatever encloses them."""
    for value in values:
        if isinstance(value, SigmaExpansion):
            yield from _flatten(value.values)
        else:
            yield value


def _value_test(value: SigmaType) -> ValueTest:
    """Test for one non-string value on a raw event value."""
    if isinstance(value, SigmaTimestampPart):  # before SigmaNumber, its base class
        return _timestamp_part_test(value)
    if isinstance(value, SigmaNumber):
        return _number_test(value.number)
    if isinstance(value, SigmaBool):
        return _bool_test(value.boolean)
    if isinstance(value, SigmaRegularExpression):
        if value.regexp.contains_placeholder():
            raise UnsupportedRuleError("regular expression with a value placeholder (expand modifier)")
        return _regex_test(value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_test(value)
    if isinstance(value, SigmaCompareExpression):
        return _compare_test(value)
    if isinstance(value, SigmaQueryExpression):
        raise UnsupportedRuleError(f"backend query expression {value.expr!r} cannot be evaluated in-process")
    raise UnsupportedRuleError(f"values of type {type(value).__name__} are not supported")


def _keyword_value(value: SigmaType) -> SigmaType:
    """Keywords are substring searches, as when pySigma maps a keyword onto a field."""
    if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
        value = SigmaString(str(value.number))
    if isinstance(value, SigmaString):  # concatenation keeps the class, so |cased survives
        if not value.startswith(SpecialChars.WILDCARD_MULTI):
            value = SpecialChars.WILDCARD_MULTI + value
        if not value.endswith(SpecialChars.WILDCARD_MULTI):
            value = value + SpecialChars.WILDCARD_MULTI
        return value
    if isinstance(value, SigmaRegularExpression):
        return value
    raise UnsupportedRuleError(f"keyword values of type {type(value).__name__} are not supported")


# ---------------------------------------------------------------- condition tree

ConditionNode = object


def _closure(node: Node) -> Predicate:
    """Nested closures evaluating the leaves of ``node``: the reference the generated code is
    tested against, and the fallback for conditions nested deeper than Python's compiler accepts."""
    if isinstance(node, AnyOf):
        return _any([_closure(item) for item in node.items])
    if isinstance(node, AllOf):
        return _all([_closure(item) for item in node.items])
    if isinstance(node, Negation):
        return _not(_closure(node.item))
    if isinstance(node, TextLeaf):
        return _lower_leaf(node.name, node.fallback)
    if isinstance(node, RawLeaf):
        return _raw_leaf(node.name, node.fallback)
    if isinstance(node, Presence):
        return _null_pred(node.name, present_wanted=node.wanted)
    return node.predicate  # CallLeaf: already a closure


# ---------------------------------------------------------------- generated predicates
# The condition tree read into the typed leaves of detections.sigma.codegen: the generator
# writes one function from them, _closure evaluates them with nested closures.


def _field_node(name: str, values: Iterable[SigmaType], used: set[str]) -> Node:
    """The leaves of ``name == value`` OR-ed over ``values``; string values share one combined test."""
    used.add(name)
    plain: list[SigmaString] = []
    cased: list[SigmaString] = []
    searches: list[re.Pattern[str]] = []
    others: list[ValueTest] = []
    raw_tests: list[ValueTest] = []
    items: list[Node] = []
    for value in _flatten(values):
        if isinstance(value, SigmaCasedString):
            cased.append(value)
        elif isinstance(value, SigmaString):
            plain.append(value)
        elif isinstance(value, SigmaNull):
            items.append(Presence(name, wanted=False))
        elif isinstance(value, SigmaExists):
            items.append(Presence(name, wanted=value.exists))
        elif isinstance(value, SigmaFieldReference):
            used.add(value.field)
            items.append(CallLeaf(_fieldref_pred(name, value)))
        else:
            test = _value_test(value)  # raises UnsupportedRuleError for what cannot be evaluated
            raw_tests.append(test)
            if isinstance(value, SigmaRegularExpression):
                searches.append(_regex(value))
            else:
                others.append(test)
    if plain:
        items.insert(0, TextLeaf(name, _string_tests(plain, cased=False), _strings_test(plain, cased=False)))
    if cased or raw_tests:
        cased_tests = None
        if cased:
            cased_tests = _string_tests(cased, cased=True)
            cased_test = _strings_test(cased, cased=True)
            raw_tests.insert(0, lambda v: cased_test(_text(v)))
        items.append(RawLeaf(name, cased_tests, tuple(searches), tuple(others), _any(raw_tests)))
    return items[0] if len(items) == 1 else AnyOf(tuple(items))


def _keyword_node(values: Iterable[SigmaType], used: set[str]) -> Node:
    keywords = [_keyword_value(v) for v in _flatten(values)]
    return AnyOf(tuple(_field_node(name, keywords, used) for name in KEYWORD_FIELDS))


def _node(node: ConditionNode, used: set[str]) -> Node:
    if isinstance(node, ConditionOR):
        return _or_node(node.args, used)
    if isinstance(node, ConditionAND):
        return AllOf(tuple(_node(arg, used) for arg in node.args))
    if isinstance(node, ConditionNOT):
        return Negation(_node(node.args[0], used))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_node(node.field, [node.value], used)
    if isinstance(node, ConditionValueExpression):
        return _keyword_node([node.value], used)
    raise UnsupportedRuleError(f"condition element {type(node).__name__} is not supported")


def _or_node(args: Sequence[ConditionNode], used: set[str]) -> Node:
    """OR-ed values of one field share one leaf and one field fetch."""
    by_field: dict[str, list[SigmaType]] = {}
    keywords: list[SigmaType] = []
    others: list[Node] = []
    for arg in args:
        if isinstance(arg, ConditionFieldEqualsValueExpression):
            by_field.setdefault(arg.field, []).append(arg.value)
        elif isinstance(arg, ConditionValueExpression):
            keywords.append(arg.value)
        else:
            others.append(_node(arg, used))
    items = [_field_node(name, values, used) for name, values in by_field.items()]
    if keywords:
        items.append(_keyword_node(keywords, used))
    return AnyOf(tuple(items + others))


def _predicate(trees: Sequence[ConditionNode], used: set[str], generated: bool) -> Predicate:
    """The rule's predicate: one generated function, or (``generated=False``) nested closures."""
    tree = AnyOf(tuple(_node(tree, used) for tree in trees))  # several conditions are alternatives
    if generated:
        try:
            return generate(tree)
        except (RecursionError, SyntaxError):
            pass  # nested deeper than Python's compiler accepts: the closures evaluate it the same way
    return _closure(tree)


def compile_rule(rule: SigmaRule, *, generated: bool = True) -> CompiledRule:
    """Compile a parsed rule (after the processing pipeline) into a :class:`CompiledRule`.

    The predicate is one generated function (:mod:`detections.sigma.codegen`); ``generated=False``
    builds the equivalent nested closures instead, the reference the generator is tested against.
    Raises :class:`UnsupportedRuleError` for valid Sigma this matcher cannot evaluate, and
    pySigma's ``SigmaError`` when the condition itself is invalid (it is parsed here).
    """
    used: set[str] = set()
    try:
        trees: list[object] = []
        for condition in rule.detection.parsed_condition:
            tree = condition.parsed
            if tree is None:
                raise UnsupportedRuleError("the condition is empty after field processing")
            trees.append(tree)
        if not trees:
            raise UnsupportedRuleError("the rule has no condition")
        predicate = _predicate(trees, used, generated)
    except UnsupportedRuleError as exc:
        raise UnsupportedRuleError(exc.reason, rule.title) from exc
    logsource = LogsourceKey(rule.logsource.product, rule.logsource.category, rule.logsource.service)
    suppress_seconds, suppress_by = _suppression(rule)
    return CompiledRule(
        rule_id=str(rule.id) if rule.id is not None else rule.title,
        title=rule.title,
        # Sigma makes the level optional; the detection engine treats a missing one as medium.
        level=str(rule.level.name).lower() if rule.level is not None else "medium",
        tags=tuple(str(tag) for tag in rule.tags),
        logsource=logsource,
        fields_used=tuple(sorted(used)),
        predicate=predicate,
        name=rule.name,
        anchors=rule_anchors(trees),
        suppress_seconds=suppress_seconds,
        suppress_by=suppress_by,
        incident_group_by=_incident_group_by(rule),
    )


def _incident_group_by(rule: SigmaRule) -> tuple[str, ...]:
    """The rule's ``incident-group-by`` custom attribute (the loader reports a bad one with its line first)."""
    if GROUP_BY_ATTRIBUTE not in rule.custom_attributes:
        return ()
    try:
        return parse_group_by(rule.custom_attributes[GROUP_BY_ATTRIBUTE])
    except GroupByError as exc:
        raise UnsupportedRuleError(str(exc), rule.title) from exc


def _suppression(rule: SigmaRule) -> tuple[int, tuple[str, ...]]:
    """The rule's ``suppression: {timespan: 10m, group-by: [source.ip]}`` custom attribute."""
    spec = rule.custom_attributes.get("suppression")
    if spec is None:
        return 0, ()
    if not isinstance(spec, dict) or "timespan" not in spec:
        raise UnsupportedRuleError("suppression must be a mapping with a timespan (e.g. {timespan: 10m})", rule.title)
    try:
        seconds = SigmaCorrelationTimespan(str(spec["timespan"])).seconds
    except SigmaError as exc:
        raise UnsupportedRuleError(f"suppression timespan: {exc}", rule.title) from exc
    group_by = spec.get("group-by", [])
    if not isinstance(group_by, list) or not all(isinstance(name, str) for name in group_by):
        raise UnsupportedRuleError("suppression group-by must be a list of field names", rule.title)
    return seconds, tuple(group_by)


def compile_collection(report: LoadReport) -> list[CompiledRule]:
    """The compiled rules of a load report (the loader compiles every rule it reports as loaded)."""
    return [entry.compiled for entry in report.loaded if entry.compiled is not None]


# ---------------------------------------------------------------- routing


class _Router:
    """ROUTES indexed by the first condition of each alternative, so an event checks only candidates."""

    def __init__(self, routes: Mapping[LogsourceKey, Sequence[RouteCondition]]) -> None:
        self.index: dict[tuple[str, str], list[tuple[LogsourceKey, tuple[tuple[str, frozenset[str]], ...]]]] = {}
        for logsource, alternatives in routes.items():
            for alternative in alternatives:
                if not alternative:
                    raise RuleSetError(f"route for {logsource} has an empty condition")
                checks = tuple((name, frozenset(v.lower() for v in values)) for name, values in alternative.items())
                anchor_name, anchor_values = checks[0]
                for anchor in anchor_values:
                    self.index.setdefault((anchor_name, anchor), []).append((logsource, checks[1:]))
        self.anchor_fields = tuple(sorted({name for name, _ in self.index}))
        #: every field any route looks at: equal values of these give equal logsources
        self.fields = tuple(
            sorted({name for alternatives in routes.values() for alternative in alternatives for name in alternative})
        )

    def logsources(self, ctx: MatchContext) -> frozenset[LogsourceKey]:
        found: set[LogsourceKey] = set()
        for name in self.anchor_fields:
            value = ctx.lower(name)
            if value is None:
                continue
            for item in value if isinstance(value, tuple) else (value,):
                for logsource, checks in self.index.get((name, item), ()):
                    if logsource not in found and all(_holds(ctx, n, allowed) for n, allowed in checks):
                        found.add(logsource)
        return frozenset(found)


def _holds(ctx: MatchContext, name: str, allowed: frozenset[str]) -> bool:
    value = ctx.lower(name)
    if value is None:
        return False
    if isinstance(value, tuple):
        return any(item in allowed for item in value)
    return value in allowed


class RuleSet:
    """Compiled rules indexed by logsource; :meth:`match` evaluates an event only against its logsources."""

    def __init__(
        self,
        rules: Iterable[CompiledRule],
        routes: Mapping[LogsourceKey, Sequence[RouteCondition]] | None = None,
    ) -> None:
        self.rules: tuple[CompiledRule, ...] = tuple(rules)
        seen: dict[str, CompiledRule] = {}
        for rule in self.rules:
            first = seen.setdefault(rule.rule_id, rule)
            if first is not rule:
                raise RuleSetError(f"duplicate rule id {rule.rule_id} ({first.title!r} and {rule.title!r})")
        self.routes = dict(ROUTES if routes is None else routes)
        self._router = _Router(self.routes)
        self._route_fields = tuple(map(sys.intern, self._router.fields))  # the name objects events carry
        self._by_logsource: dict[LogsourceKey, tuple[CompiledRule, ...]] = {}
        for rule in self.rules:
            self._by_logsource[rule.logsource] = (*self._by_logsource.get(rule.logsource, ()), rule)
        self._candidates: dict[frozenset[LogsourceKey], tuple[CompiledRule, ...]] = {}
        self._indexes: dict[frozenset[LogsourceKey], AnchorIndex] = {}
        # route-field values -> index: routing costs one tuple and one dict lookup per event
        self._by_route: dict[tuple[object, ...], AnchorIndex] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self.rules)

    def logsources(self, event: Event) -> frozenset[LogsourceKey]:
        """The logsources an event belongs to, per the routing table."""
        return self._router.logsources(MatchContext(event))

    def routable(self, rule: CompiledRule) -> bool:
        """Whether any routed logsource can ever deliver events to ``rule``."""
        return any(rule.logsource.covers(logsource) for logsource in self.routes)

    def candidates_for(self, logsources: frozenset[LogsourceKey]) -> tuple[CompiledRule, ...]:
        cached = self._candidates.get(logsources)
        if cached is None:
            cached = tuple(
                rule
                for key, rules in self._by_logsource.items()
                if any(key.covers(logsource) for logsource in logsources)
                for rule in rules
            )
            self._candidates[logsources] = cached  # bounded by the distinct logsource sets seen
        return cached

    def index_for(self, logsources: frozenset[LogsourceKey]) -> AnchorIndex:
        """The anchor index of the candidate rules of a logsource set (built once per distinct set)."""
        index = self._indexes.get(logsources)
        if index is None:
            index = self._indexes[logsources] = AnchorIndex(self.candidates_for(logsources))
        return index

    def match(self, event: Event) -> list[CompiledRule]:
        """The rules that match ``event``, in load order within each logsource.

        Only rules whose field anchors occur in the event (and rules without anchors) are
        evaluated, so the cost follows the anchors present, not the number of rules loaded.
        """
        key = route_key(event.fields, self._route_fields)  # tuple(map(fields.get, names)), in C when built
        index = self._by_route.get(key)
        if index is None:
            if len(self._by_route) >= MAX_ROUTE_KEYS:
                self._by_route.clear()  # bounded: distinct route-field combinations are few in practice
            index = self._by_route[key] = self.index_for(self._router.logsources(MatchContext(event)))
        if not index.rules:
            return []  # an event no loaded rule is written for: no context, no index walk
        return index.matching(MatchContext(event))
