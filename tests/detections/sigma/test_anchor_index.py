"""The anchor index's hit masks: designated clauses, exact-filter exclusions, and the same matches as brute force."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
from sigma.types import SigmaCasedString, SigmaRegularExpression, SigmaString

from detections.sigma import index as index_module
from detections.sigma.anchors import RuleAnchors, exact_anchor
from detections.sigma.index import AnchorIndex, clause_selectivity, designated, gram_cover
from detections.sigma.matcher import CompiledRule, MatchContext
from tests.detections.sigma.test_hitmask import use_implementation
from tests.detections.sigma.test_matcher import rule, windows_rule
from tests.helpers import event

SVCHOST = "C:\\Windows\\System32\\svchost.exe"
SERVICES = "C:\\Windows\\System32\\services.exe"


@pytest.fixture(autouse=True, params=["compiled", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on the compiled per-event loop and on its Python specification."""
    return use_implementation(request.param, monkeypatch)


def _brute_force(rules: list[CompiledRule], ctx: MatchContext) -> list[int]:
    return [i for i, r in enumerate(rules) if r.predicate(ctx)]


def _check(rules: list[CompiledRule], fields: Mapping[str, object]) -> list[int]:
    """The index's matches for one event, asserted equal to evaluating every rule."""
    index = AnchorIndex(rules)
    for _ in range(2):  # the second pass answers from the value and hit-mask caches
        found = index.match(MatchContext(event(0, fields)))
        assert found == _brute_force(rules, MatchContext(event(0, fields))), fields
    return found


# ------------------------------------------------------------------ designated clause


def test_the_designated_clause_is_the_most_selective() -> None:
    exe = (("process.executable", "suffix", ".exe"),)
    name = (("winlog.event_data.OriginalFileName", "eq", "cmd.exe"),)
    wmic = (("process.executable", "suffix", "\\wmic.exe"),)
    appdata = (("file.path", "contains", "\\appdata\\local\\temp\\"),)
    assert designated([exe, name]) == 1  # equality beats a suffix
    assert designated([exe, wmic]) == 1  # a longer suffix beats a shorter one
    assert designated([appdata, wmic]) == 1  # a suffix beats even a long substring
    # a clause is as weak as its weakest anchor
    assert clause_selectivity(name + exe) < clause_selectivity(wmic)


def test_a_multi_clause_rule_is_a_candidate_only_when_every_clause_holds() -> None:
    compiled = windows_rule(
        """
        selection:
            Image|endswith: '\\wmic.exe'
            CommandLine|contains: 'shadowcopy'
        condition: selection
        """
    )
    index = AnchorIndex([compiled])
    assert len(compiled.anchors or ()) == 2
    designated_only = {"process.executable": "C:\\Windows\\System32\\wbem\\WMIC.exe", "process.command_line": "x"}
    both = {**designated_only, "process.command_line": "wmic shadowcopy delete"}
    assert index.candidates(MatchContext(event(0, designated_only))) == []
    assert index.candidates(MatchContext(event(0, both))) == [0]
    assert _check([compiled], both) == [0]


# ------------------------------------------------------------------ exact anchors and exclusions


@pytest.mark.parametrize(
    ("value", "anchor"),
    [
        (SigmaString("C:\\Windows\\svchost.exe"), ("f", "eq", "c:\\windows\\svchost.exe")),
        (SigmaString("100\\*"), ("f", "eq", "100*")),  # an escaped star is text
        (SigmaString("*\\svchost.exe"), ("f", "suffix", "\\svchost.exe")),
        (SigmaString("C:\\Windows\\System32*"), ("f", "prefix", "c:\\windows\\system32")),
        (SigmaString("*\\Temp*"), ("f", "contains", "\\temp")),
        (SigmaString(""), ("f", "eq", "")),
        (SigmaString("C:*svchost.exe"), None),  # a wildcard inside: the longest part is necessary, not exact
        (SigmaString("svc?ost.exe"), None),
        (SigmaString("*"), None),
        (SigmaCasedString("*\\Svchost.exe"), None),  # |cased: lower case proves nothing
        (SigmaRegularExpression("svchost"), None),
    ],
)
def test_exact_anchors_only_where_presence_proves_the_value_matches(value: object, anchor: object) -> None:
    assert exact_anchor("f", value) == anchor  # type: ignore[arg-type]


def test_not_filters_give_exclusions_and_the_index_drops_the_rule_when_one_holds() -> None:
    compiled = windows_rule(
        """
        selection:
            Image|endswith: '\\svchost.exe'
        filter_main_generic:
            ParentImage|endswith:
                - '\\services.exe'
                - '\\MsMpEng.exe'
        filter_main_null:
            ParentImage: null
        filter_optional_pair:
            ParentImage|startswith: 'C:\\Tools\\'
            User|contains: 'Admin'
        condition: selection and not 1 of filter_main_* and not 1 of filter_optional_*
        """
    )
    assert isinstance(compiled.anchors, RuleAnchors)
    assert set(compiled.anchors.exclusions) == {
        (("process.parent.executable", "suffix", "\\services.exe"),),
        (("process.parent.executable", "suffix", "\\msmpeng.exe"),),
        (("process.parent.executable", "prefix", "c:\\tools\\"), ("user.name", "contains", "admin")),
    }
    index = AnchorIndex([compiled])
    started_by = {"process.executable": SVCHOST}
    assert index.candidates(MatchContext(event(0, {**started_by, "process.parent.executable": SERVICES}))) == []
    # one anchor of a two-anchor exclusion is not enough: the filter does not hold, the rule fires
    tools = {**started_by, "process.parent.executable": "C:\\Tools\\run.exe", "user.name": "bob"}
    assert _check([compiled], tools) == [0]
    assert _check([compiled], {**tools, "user.name": "CITY\\Administrator"}) == []
    assert index.candidates(MatchContext(event(0, {**tools, "user.name": "CITY\\Administrator"}))) == []
    assert _check([compiled], {**started_by, "process.parent.executable": "C:\\Users\\x\\evil.exe"}) == [0]


@pytest.mark.parametrize(
    "filter_value",
    [
        "ParentImage|endswith|cased: '\\Services.exe'",  # case-sensitive: the lower-cased anchor proves nothing
        "ParentImage: 'D:\\Other*services.exe.bak'",  # a wildcard inside
        "ParentImage|re: '^C:\\\\Windows\\\\System32\\\\services\\.exe$'",
        "ParentImage|endswith: 'Other\\x?services.exe'",
    ],
)
def test_a_filter_whose_anchor_is_present_but_which_does_not_hold_leaves_the_rule_matching(filter_value: str) -> None:
    compiled = windows_rule(
        f"""
        selection:
            Image|endswith: '\\svchost.exe'
        filter:
            {filter_value}
        condition: selection and not filter
        """
    )
    assert not getattr(compiled.anchors, "exclusions", ())
    # the literal part of the filter is in the event, the filter itself does not hold
    fields = {"process.executable": SVCHOST, "process.parent.executable": "D:\\Other\\services.exe"}
    assert _check([compiled], fields) == [0]


def test_an_unanchored_rule_is_evaluated_unless_its_exclusion_holds() -> None:
    compiled = windows_rule(
        """
        known_image_extension:
            Image|endswith: ['.exe', '.com']
        condition: not known_image_extension
        """
    )
    assert compiled.anchors == ()
    index = AnchorIndex([compiled])
    assert index.always == (0,)
    assert index.candidates(MatchContext(event(0, {"process.executable": SVCHOST}))) == []
    assert _check([compiled], {"process.executable": "C:\\Users\\x\\payload.bin"}) == [0]
    assert _check([compiled], {"process.command_line": "no image at all"}) == [0]


def test_exclusions_on_multi_valued_fields_hold_when_any_value_matches() -> None:
    compiled = rule(
        """
        sel: {event.action: login}
        filter: {related.user: operator}
        condition: sel and not filter
        """
    )
    assert _check([compiled], {"event.dataset": "camera.platform", "event.action": "login",
                               "related.user": ("viewer", "operator")}) == []  # fmt: skip
    assert _check([compiled], {"event.dataset": "camera.platform", "event.action": "login",
                               "related.user": ("viewer", "operators")}) == [0]  # fmt: skip


# ------------------------------------------------------------------ against brute force


def test_rules_with_filters_agree_with_brute_force_on_every_combination_of_values() -> None:
    rules = [
        windows_rule(detection)
        for detection in (
            "sel: {Image|endswith: '\\svchost.exe'}\nflt: {ParentImage|endswith: '\\services.exe'}\n"
            "condition: sel and not flt",
            "sel: {Image|endswith: ['.exe', '.com']}\ncondition: not sel",
            "sel: {Image|contains: '\\'}\nflt: {Image: ['System', 'Registry']}\ncondition: not sel and not flt",
            "a: {Image|endswith: '\\cmd.exe'}\nb: {CommandLine|contains: ['/c ', '/k ']}\n"
            "f: {CommandLine|contains|all: ['echo', 'pipe']}\ncondition: a and b and not f",
            "sel: {CommandLine|re: '\\w+`(?:\\w+|-|.)`[\\w+|\\s]'}\nf: {CommandLine|contains: '${env:path}'}\n"
            "condition: sel and not f",
            "sel: {ParentImage|startswith: 'C:\\Windows\\'}\nf1: {Image|endswith: '\\svchost.exe'}\n"
            "f2: {User|contains: 'SYSTEM'}\ncondition: sel and not (f1 and f2)",
            # either alternative may fire: a filter of one proves nothing about the rule
            "a: {Image|endswith: '\\svchost.exe'}\nfa: {ParentImage|endswith: '\\services.exe'}\n"
            "b: {User|contains: 'SYSTEM'}\nfb: {CommandLine|contains: '/k '}\n"
            "condition: (a and not fa) or (b and not fb)",
        )
    ]
    images = [SVCHOST, "C:\\Windows\\System32\\cmd.exe", "C:\\Temp\\svchost.exe", "System", "payload.bin", None]
    parents = [SERVICES, "C:\\Windows\\explorer.exe", "D:\\services.exe.bak", None]
    commands = ["cmd /c echo x | pipe", "cmd /k dir", "IN`V`o`Ke-eXp`ResSIOn", "$env:path ${env:path} a`b`c", None]
    users = ["NT AUTHORITY\\SYSTEM", "CITY\\alice", None]
    total = 0
    for image, parent, command, user in itertools.product(images, parents, commands, users):
        values = {"process.executable": image, "process.parent.executable": parent,
                  "process.command_line": command, "user.name": user}  # fmt: skip
        total += len(_check(rules, {k: v for k, v in values.items() if v is not None}))
    assert total > 50  # the combinations exercised real matches, not only empty lists


def test_numeric_anchors_on_text_and_number_values_agree_with_brute_force() -> None:
    rules = [rule("a: {event.code: 1}\ncondition: a"), rule("a: {event.severity: 7}\ncondition: a")]
    base = {"event.dataset": "camera.platform"}
    fired = [_check(rules, {**base, "event.code": code}) for code in ("1", "01", "1.0", "one", "10", "1")]
    assert fired == [[0], [0], [0], [], [], [0]]
    assert _check(rules, {**base, "event.severity": 7}) == [1]
    assert _check(rules, {**base, "event.severity": 70}) == []


def test_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "SEEN_PER_FIELD", 2)
    monkeypatch.setattr(index_module, "SEEN_MASKS", 2)
    compiled = windows_rule("sel: {CommandLine|contains: 'mimikatz'}\ncondition: sel")
    index = AnchorIndex([compiled])
    for n in range(20):
        command = f"run {n} mimikatz" if n % 3 else f"run {n}"
        assert index.match(MatchContext(event(0, {"process.command_line": command}))) == ([0] if n % 3 else [])
    assert len(index._seen["process.command_line"]) <= 2 and 0 < len(index._masks) <= 2
    assert len(index._by_mask) <= 2


# ------------------------------------------------------------------ substring pre-check


def test_gram_cover_finds_few_substrings_in_every_literal() -> None:
    literals = ["sekurlsa::", "kerberos::ptt", "lsadump::", "gentilkiwi.com", "eo.oe.kiwi", "mimidrv.sys"]
    grams = gram_cover(literals)
    assert grams is not None and len(grams) <= index_module.MAX_GRAMS
    assert all(any(g in literal for g in grams) for literal in literals)
    assert gram_cover([f"word{n}x{n * 7}" for n in range(200)]) is None  # too many literals to search a cover
    assert gram_cover(["ab", "cd", "ef", "gh"]) is None  # more than MAX_GRAMS substrings needed
    assert gram_cover(["a", "bcd"]) is None


def test_a_keyword_rule_searching_the_raw_record_still_fires_behind_the_pre_check() -> None:
    compiled = rule("keywords: ['sekurlsa::', 'gentilkiwi.com', 'mimidrv.sys']\ncondition: keywords")
    raw = '{"EventData": {"CommandLine": "x"}, "padding": "' + "benign text " * 50 + '"}'
    base = {"event.dataset": "camera.platform"}
    assert _check([compiled], {**base, "event.original": raw}) == []
    assert _check([compiled], {**base, "event.original": raw.replace("benign", "SEKURLSA::logonpasswords", 1)}) == [0]
    assert _check([compiled], {**base, "event.original": raw + " MIMIDRV.SYS"}) == [0]


def test_anchors_on_the_event_record_fields_are_read_from_the_record() -> None:
    compiled = rule("a: {event.id: 'case-42'}\nb: {event.action: login}\ncondition: a and b")
    index = AnchorIndex([compiled])
    fields = {"event.dataset": "camera.platform", "event.action": "login"}
    assert index.match(MatchContext(event(0, fields, event_id="case-42"))) == [0]
    assert index.match(MatchContext(event(0, fields, event_id="case-43"))) == []
    assert index.match(MatchContext(event(0, fields, event_id="case-42"))) == [0]  # from the caches
