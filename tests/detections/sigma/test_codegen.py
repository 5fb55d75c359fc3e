"""Generated rule predicates: the same matches as the closure compiler, literals kept as data, cheap tests first."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest
from sigma.conditions import ConditionFieldEqualsValueExpression, ConditionNOT
from sigma.rule import SigmaRule
from sigma.types import SigmaString

from detections.bench import realistic_stream, regression_events
from detections.sigma.codegen import Negation, Node, StringTests, TextLeaf, generate, required_texts
from detections.sigma.loader import load_rules
from detections.sigma.matcher import CompiledRule, MatchContext, RuleSet, _predicate, compile_rule
from store.event import Event
from tests.helpers import event, shared


def rule(detection: str, *, generated: bool = True) -> CompiledRule:
    text = f"""\
title: codegen test rule
logsource:
    product: citysoc
    service: camera
detection:
{textwrap.indent(textwrap.dedent(detection), "    ")}
"""
    return compile_rule(SigmaRule.from_yaml(text), generated=generated)


def test_generated_and_closure_predicates_agree_over_the_sigmahq_windows_pack() -> None:
    events = regression_events(shared("sigma-regression", "regression_data"))
    report = load_rules([shared("sigma", "rules", "windows")])
    entries = [entry for entry in report.loaded if entry.compiled is not None and isinstance(entry.rule, SigmaRule)]
    generated = [entry.compiled for entry in entries if entry.compiled is not None]
    closures = [compile_rule(entry.rule, generated=False) for entry in entries if isinstance(entry.rule, SigmaRule)]
    assert len(generated) == len(closures) > 2000
    assert not any(r.predicate.__doc__ is None for r in generated)  # every rule took the generated path

    def matches(rules: list[CompiledRule], e: Event) -> list[int]:
        ctx = MatchContext(e)
        return [i for i, r in enumerate(rules) if r.predicate(ctx)]

    # Every rule on every attack sample, whatever its logsource: all shapes of leaf meet all shapes of event.
    attack_matches = 0
    for e in events:
        expected = matches(closures, e)
        assert matches(generated, e) == expected, e.get("winlog.record_id")
        attack_matches += len(expected)
    assert attack_matches > 150
    # The benign stream, against the rules routed to each event (what the engine evaluates).
    ruleset = RuleSet(closures)
    position = {r.rule_id: i for i, r in enumerate(closures)}
    benign_matches = evaluated = 0
    for e in realistic_stream(events, 400):
        routed = [position[r.rule_id] for r in ruleset.candidates_for(ruleset.logsources(e))]
        ctx_g, ctx_c = MatchContext(e), MatchContext(e)
        got = [i for i in routed if generated[i].predicate(ctx_g)]
        assert got == [i for i in routed if closures[i].predicate(ctx_c)], e.id
        benign_matches += len(got)
        evaluated += len(routed)
    assert evaluated > 100_000 and benign_matches > 0


@pytest.mark.parametrize(
    ("pattern", "flags", "required"),
    [
        (r"\w+`(?:\w+|-|.)`[\w+|\s]", 0, ("`",)),
        (r'"(?:\{\d\})+"\s*-f', 0, ("-f", '"', "{")),  # a repetition of at least one counts, longest first
        (r"(?i)\$\{`?e`?n`?v", 0, ("${",)),  # letters are left out under IGNORECASE
        (r"invoke-expression", re.IGNORECASE, ("-",)),
        (r"abc|def", 0, ()),  # alternatives: nothing every match contains
        (r"ab?c", 0, ("a", "c")),
        (r"x(?i:abc)(de)*(?=gh)yz", 0, ("yz", "x")),  # own flags, optional repeats and lookaheads are left out
        (r"(ab)+c{2}", 0, ("ab", "c")),
        (r"a{0}bcd", 0, ("bcd",)),
    ],
)
def test_required_texts_are_in_every_match(pattern: str, flags: int, required: tuple[str, ...]) -> None:
    assert required_texts(re.compile(pattern, flags)) == required


def test_regex_prefilter_keeps_case_insensitive_matches() -> None:
    r = rule(r"""
        a:
            user.name|re|i: 'invoke-\$X'
        condition: a
    """)
    assert r.match(event(fields={"user.name": "run INVOKE-$x now"}))
    assert not r.match(event(fields={"user.name": "run INVOKE-x now"}))


def test_rule_values_are_data_not_code() -> None:
    hostile = "x' or True or \"\" + __import__('os').getcwd() + '"
    quoted = "'" + hostile.replace("'", "''") + "'"  # a YAML single-quoted scalar
    r = rule(f"""
        a:
            user.name: {quoted}
            url.path|contains: '") or ("'
        condition: a
    """)
    assert r.match(event(fields={"user.name": hostile.upper(), "url.path": '/a") or ("b'}))
    assert not r.match(event(fields={"user.name": "x", "url.path": '/a") or ("b'}))
    assert not r.match(event(fields={"user.name": hostile, "url.path": "/a"}))
    assert "__import__" not in (r.predicate.__doc__ or "").replace(repr(hostile.lower()), "")


def test_cheap_tests_run_before_regexes_and_calls() -> None:
    r = rule("""
        slow:
            url.path|re: '^/cgi-bin/.*\\.sh$'
        fast:
            user.name: admin
        condition: slow and fast
    """)
    source = r.predicate.__doc__ or ""
    assert source.index("== 'admin'") < source.index("url.path")
    assert r.match(event(fields={"user.name": "Admin", "url.path": "/cgi-bin/x.sh"}))
    assert not r.match(event(fields={"user.name": "guest", "url.path": "/cgi-bin/x.sh"}))


def test_filters_run_after_the_selection() -> None:
    r = rule("""
        selection:
            url.path|contains: /cgi-bin/
        filter:
            user.name: admin
        condition: not filter and selection
    """)
    source = r.predicate.__doc__ or ""
    assert source.index("'/cgi-bin/' in") < source.index("== 'admin'")
    assert r.match(event(fields={"user.name": "guest", "url.path": "/cgi-bin/x.sh"}))
    assert not r.match(event(fields={"user.name": "ADMIN", "url.path": "/cgi-bin/x.sh"}))


@pytest.mark.parametrize("generated", [True, False])
def test_array_and_absent_values_match_alike_in_both_compilers(generated: bool) -> None:
    r = rule(
        """
        a:
            related.user|endswith: min
        b:
            url.path: null
        condition: a and b
        """,
        generated=generated,
    )
    assert r.match(event(fields={"related.user": ("guest", "ADMIN")}))
    assert not r.match(event(fields={"related.user": ("guest", "root")}))
    assert not r.match(event(fields={"related.user": ("admin",), "url.path": "/x"}))
    assert not r.match(event(fields={}))


def test_python_refuses_to_compile_a_predicate_nested_too_deep() -> None:
    deep: Node = TextLeaf("user.name", StringTests(equal=frozenset({"admin"})), "admin".__eq__)
    assert generate(deep)(MatchContext(event(fields={"user.name": "Admin"})))
    for _ in range(301):
        deep = Negation(deep)
    with pytest.raises((SyntaxError, RecursionError)):
        generate(deep)


def test_a_condition_too_deep_to_generate_falls_back_to_closures() -> None:
    node: Any = ConditionFieldEqualsValueExpression("user.name", SigmaString("admin"))
    for _ in range(301):  # pySigma's own parser stops earlier; a tree built in code gets this far
        node = ConditionNOT([node])
    predicate = _predicate([node], set(), generated=True)
    assert predicate.__doc__ is None  # the closures, not a generated function
    assert predicate(MatchContext(event(fields={"user.name": "x"})))  # an odd number of NOTs
    assert not predicate(MatchContext(event(fields={"user.name": "ADMIN"})))


def test_the_context_lowers_each_field_once_on_first_use() -> None:
    e = event(fields={"user.name": "ADMIN", "url.path": "/X", "source.port": 8080})
    ctx = MatchContext(e)
    assert dict(ctx) == {}
    first = ctx.lower("user.name")
    assert first == "admin" and ctx.lower("user.name") is first
    assert ctx.lower("source.port") == "8080"
    assert ctx.lower("event.id") == e.id.lower()
    assert ctx.lower("host.name") is None
    assert set(ctx) == {"user.name", "source.port", "event.id", "host.name"}
    assert ctx.raw("url.path") == "/X"
