"""Field anchors and the anchor index: necessary conditions only, and the same matches as brute force."""

from __future__ import annotations

import re

import pytest

from detections.bench import realistic_stream, regression_events
from detections.pack import load_rules
from detections.sigma.anchors import RuleAnchors, regex_literals
from detections.sigma.index import AnchorIndex
from detections.sigma.matcher import MatchContext, RuleSet
from store.event import Event
from tests.detections.sigma.test_hitmask import use_implementation
from tests.detections.sigma.test_matcher import rule
from tests.helpers import event, shared


@pytest.fixture(autouse=True, params=["compiled", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on the compiled per-event loop and on its Python specification."""
    return use_implementation(request.param, monkeypatch)


def test_anchor_kinds_follow_the_value_shape() -> None:
    compiled = rule(
        """
        sel:
          event.action: Login-Failed
          url.path|startswith: /admin
        other:
          user.name|endswith: root
        condition: sel or other
        """
    )
    # an OR distributes: (action and path) or user -> (action or user) and (path or user)
    clauses = {frozenset(clause) for clause in compiled.anchors or ()}
    assert clauses == {
        frozenset({("event.action", "eq", "login-failed"), ("user.name", "suffix", "root")}),
        frozenset({("url.path", "prefix", "/admin"), ("user.name", "suffix", "root")}),
    }


def test_a_distributed_or_keeps_a_common_literal_from_making_the_rule_a_candidate() -> None:
    traversal = rule(
        """
        sel_1: {process.executable|contains: '\\Windows\\', process.command_line|contains: '\\..\\..\\'}
        sel_2: {process.command_line|contains: '.exe\\..\\'}
        condition: 1 of sel_*
        """
    )
    index = AnchorIndex([traversal])
    benign = {"event.dataset": "camera.platform", "process.executable": "C:\\Windows\\System32\\svchost.exe",
              "process.command_line": "svchost.exe -k netsvcs"}  # fmt: skip
    assert index.candidates(MatchContext(event(0, benign))) == []
    attack = {**benign, "process.command_line": "svchost.exe ..\\..\\..\\x"}
    assert index.match(MatchContext(event(0, attack))) == [0] and traversal.match(event(0, attack))


def test_an_or_with_too_many_picks_gives_one_clause() -> None:
    alternatives = "\n".join(f"s{n}: {{a{n}: x{n}, b{n}: y{n}, c{n}: z{n}}}" for n in range(4))  # 3**4 = 81 picks
    compiled = rule(f"{alternatives}\ncondition: 1 of s*")
    (clause,) = compiled.anchors or ((),)
    assert sorted(name[-1] for name, _, _ in clause) == ["0", "1", "2", "3"]  # one anchor per alternative


def test_and_keeps_a_clause_per_anchored_operand_most_selective_first_and_not_is_unanchored() -> None:
    both = rule(
        """
        a: {event.outcome: ok}
        b: {url.path|contains: /cgi-bin/luci}
        c: {http.request.method: [GET, POST]}
        condition: a and b and c and not 1 of x*
        x1: {user.name: admin}
        """
    )
    assert both.anchors == (
        (("url.path", "contains", "/cgi-bin/luci"),),
        (("http.request.method", "eq", "get"), ("http.request.method", "eq", "post")),
        (("event.outcome", "eq", "ok"),),
    )
    negated = rule("a: {event.outcome: ok}\ncondition: not a")
    assert negated.anchors == ()  # no clause: always evaluated, unless its exclusion holds
    assert isinstance(negated.anchors, RuleAnchors)
    assert negated.anchors.exclusions == ((("event.outcome", "eq", "ok"),),)
    regex = rule("a: {url.path|re: '^/.x'}\nb: {event.outcome: ok}\ncondition: a or b")
    assert regex.anchors is None  # one OR branch without a literal makes the whole rule unanchored


def test_numbers_and_regular_expressions_anchor_on_what_every_match_needs() -> None:
    number = rule("a: {event.severity: 16}\ncondition: a")
    assert number.anchors == ((("event.severity", "num", "16.0"),),)
    regex = rule("a: {process.command_line|re: '(?i)ipconfig\\s+/all|net\\s+config'}\ncondition: a")
    # under (?i) a literal run stops at i and s: re matches them with dotless i and long s
    assert regex.anchors == ((("process.command_line", "contains", "conf"),
                              ("process.command_line", "contains", "pconf")),)  # fmt: skip
    ruleset = RuleSet([rule("a: {event.severity: 16}\ncondition: a", id="6f1b2c4d-0000-4000-8000-000000000003")])
    assert ruleset.match(event(0, {"event.dataset": "camera.platform", "event.severity": 16}))
    assert not ruleset.match(event(0, {"event.dataset": "camera.platform", "event.severity": 15}))


@pytest.mark.parametrize(
    ("pattern", "text", "literals"),
    [
        (r"(?i)\.exe[\"']?\s+[^\"]{0,64}werfaultsecure\.exe", 'x.EXE "C:\\WerFaultSecure.exe', ["ecure.exe"]),
        ("(?i)STOP-(service|process)", "stop-Service x", ["top-"]),
        ("a(bcd)+e", "abcdbcde", ["bcd"]),
        ("(abc|de)f?", "xdex", ["abc", "de"]),
        ("(abc|d)", "d", None),  # one branch has no literal of two characters
        ("a(bcd)*", "a", None),  # zero repetitions match too
        ("(?i)k", "\u212a", None),  # the Kelvin sign: matches, and single letters never anchor
    ],
)
def test_regex_literals_are_necessary(pattern: str, text: str, literals: list[str] | None) -> None:
    found = regex_literals(pattern)
    assert found == literals
    if found is not None and re.search(pattern, text):
        assert any(literal in text.lower() for literal in found)


def test_keywords_anchor_on_message_and_original() -> None:
    keyword = rule("keywords: ['*Invalid user*']\ncondition: keywords")
    (clause,) = keyword.anchors or ((),)
    assert set(clause) == {
        ("message", "contains", "invalid user"),
        ("event.original", "contains", "invalid user"),
    }


@pytest.mark.parametrize(
    ("fields", "fires"),
    [
        ({"event.dataset": "camera.platform", "url.path": "/Admin/login", "event.action": "x"}, True),
        ({"event.dataset": "camera.platform", "url.path": "/user/admin", "event.action": "x"}, False),
        ({"event.dataset": "camera.platform", "user.name": "superROOT", "event.action": "x"}, True),
        ({"event.dataset": "camera.platform", "user.name": "root2", "event.action": "x"}, False),
    ],
)
def test_index_finds_prefix_and_suffix_only_in_place(fields: dict[str, str], fires: bool) -> None:
    compiled = rule(
        """
        a: {url.path|startswith: /admin}
        b: {user.name|endswith: root}
        condition: a or b
        """,
        id="6f1b2c4d-0000-4000-8000-000000000001",
    )
    ruleset = RuleSet([compiled])
    assert bool(ruleset.match(event(0, fields))) is fires


def _brute_force(ruleset: RuleSet, e: Event) -> list[str]:
    ctx = MatchContext(e)
    return [r.rule_id for r in ruleset.candidates_for(ruleset.logsources(e)) if r.predicate(ctx)]


def test_index_gives_the_brute_force_matches_over_the_sigmahq_windows_pack() -> None:
    events = regression_events(shared("sigma-regression", "regression_data"))
    loaded = load_rules([shared("sigma", "rules", "windows")])
    ruleset = RuleSet(loaded.compiled)
    # The samples, and the same events with the process image renamed: near misses for the index.
    variants = [e.replace(**{"process.executable": "C:\\Tools\\renamed.bin"}) for e in events]
    benign = realistic_stream(events, 600)  # everyday values in the same shapes
    total = 0
    for e in [*events, *variants, *benign]:
        indexed = [r.rule_id for r in ruleset.match(e)]
        assert indexed == _brute_force(ruleset, e), e.get("winlog.record_id")
        total += len(indexed)
    assert total > len(events)  # the comparison covered real matches, not only empty lists
    assert sum(1 for r in loaded.compiled if not r.anchors) < len(loaded.compiled) * 0.1


def test_the_route_cache_is_per_route_values() -> None:
    camera = rule("a: {event.action: x}\ncondition: a", id="6f1b2c4d-0000-4000-8000-000000000002")
    ruleset = RuleSet([camera])
    assert ruleset.match(event(0, {"event.dataset": "camera.platform", "event.action": "x"}))
    assert not ruleset.match(event(0, {"event.dataset": "iot.mqtt", "event.action": "x"}))
