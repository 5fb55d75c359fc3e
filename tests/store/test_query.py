"""The event query language: parsing, schema checks, SQL on the embedded store, Elasticsearch DSL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from store.event import Event
from store.query import And, Match, Not, Or, QueryError, Text, fields_of, parse, term, to_elastic, to_sql
from store.sqlite import TERM_FIELDS, SQLiteStore
from tests.helpers import T0, event

HOSTILE = "'; DROP TABLE events; -- \" ) OR 1=1 <script>"


def test_the_issue_example_parses_to_the_expected_tree() -> None:
    node = parse('source.ip:10.0.0.0/8 and event.action:"login failed" and not user.name:admin*')
    assert node == And((
        Match("source.ip", "cidr", "10.0.0.0/8"),
        Match("event.action", "=", "login failed"),
        Not(Match("user.name", "wildcard", "admin*")),
    ))  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("modbus", Text("modbus")),
        ('"write single register"', Text("write single register", phrase=True)),
        ("admin*", Text("admin", prefix=True)),
        ("a b", And((Text("a"), Text("b")))),
        ("a OR b", Or((Text("a"), Text("b")))),
        ("a or b and c", Or((Text("a"), And((Text("b"), Text("c")))))),
        ("(a or b) c", And((Or((Text("a"), Text("b"))), Text("c")))),
        ("NOT a", Not(Text("a"))),
        ("destination.port:>=1024", Match("destination.port", ">=", 1024)),
        ("destination.port:502", Match("destination.port", "=", 502)),
        ("source.ip:2001:db8::1", Match("source.ip", "=", "2001:db8::1")),
        ("source.ip:*", Match("source.ip", "exists")),
        ('user.name:"a*b"', Match("user.name", "=", "a*b")),  # quoted: no wildcard
        ('message:"say \\"hi\\""', Match("message", "=", 'say "hi"')),
        ("@timestamp:>=2026-11-21T08:00:00Z", Match("@timestamp", ">=", "2026-11-21T08:00:00.000000Z")),
        ("labels.site:north", Match("labels.site", "=", "north")),
        ("   ", None),
    ],
)
def test_parse(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("nosuch.field:1", 1, "unknown field 'nosuch.field'"),
        ("a and destination.port:abc", 7, "'abc' is not a valid long value"),
        ("source.ip:10.0.*", 1, "use a network such as 10.0.0.0/8"),
        ("source.ip:999.1.1.1", 1, "not a valid ip value"),
        ("(a or b", 1, "parenthesis is not closed"),
        ("a )", 3, "unexpected ')'"),
        ('user.name:"open', 11, "quoted string is not closed"),
        ("user.name:", 1, "expected a value"),
        ("a and", None, "ends where a condition was expected"),
        ("or a", 1, "needs a condition on each side"),
        ("*adm", 1, "free-text wildcards are word prefixes only"),
        ("source.ip:fe80::/10", 1, "IPv6 networks are not supported"),
        ("labels:x", 1, "query one key"),
    ],
)
def test_parse_errors_say_where(text: str, column: int | None, reason: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text)
    assert caught.value.column == column
    assert reason in str(caught.value)
    if column is not None:
        assert str(caught.value).startswith(f"query column {column}: ")


def test_overlong_and_deeply_nested_queries_are_refused() -> None:
    with pytest.raises(QueryError, match="characters long"):
        parse("a " * 3000)
    with pytest.raises(QueryError, match="nested parentheses"):
        parse("(" * 40 + "a" + ")" * 40)


def test_fields_of_and_pivot_terms_round_trip() -> None:
    assert fields_of(parse('source.ip:10.0.0.1 or not (user.name:x and "y")')) == {"source.ip", "user.name"}
    for value in ('a "quoted" \\ value', "10.0.0.1", HOSTILE):
        node = parse(term("user.name", value))
        assert node == Match("user.name", "=", value)


# the embedded store ------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "q.db")
    fields = [
        {
            "source.ip": f"10.{i % 3}.{i}.1",
            "event.action": "login failed" if i % 2 else "login",
            "user.name": f"admin{i}" if i % 4 == 0 else "bob",
            "destination.port": 1000 + i,
            "message": f"session {i} from gateway",
            "labels.site": "north" if i < 10 else "south",
        }
        for i in range(20)
    ]
    events = [event(i, f, event_id=f"ev{i:02d}") for i, f in enumerate(fields)]
    backend.put_events([*events, event(30, {"message": HOSTILE, "user.name": HOSTILE}, event_id="evil")])
    yield backend
    backend.close()


def ids(store: SQLiteStore, text: str) -> set[str]:
    page = store.find_events(parse(text), T0 - timedelta(hours=1), T0 + timedelta(hours=1), limit=500)
    return {e.id for e in page.items}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source.ip:10.1.0.0/16", {f"ev{i:02d}" for i in range(20) if i % 3 == 1}),
        ("source.ip:10.0.0.0/9", {f"ev{i:02d}" for i in range(20)}),
        ("source.ip:10.2.5.1", {"ev05"}),
        ('event.action:"login failed" and not user.name:admin*', {f"ev{i:02d}" for i in range(20) if i % 2}),
        ("user.name:admin*", {"ev00", "ev04", "ev08", "ev12", "ev16"}),
        ("destination.port:>1017", {"ev18", "ev19"}),
        ("destination.port:1003 or destination.port:1004", {"ev03", "ev04"}),
        ("labels.site:south and event.action:login", {"ev10", "ev12", "ev14", "ev16", "ev18"}),
        ("message:\"session 7 from\"", {"ev07"}),
        ("message:gate*", {f"ev{i:02d}" for i in range(20)}),
        ("session and 7", {"ev07"}),
        ("gatew*", {f"ev{i:02d}" for i in range(20)}),
        ("event.id:ev1*", {f"ev{i:02d}" for i in range(10, 20)}),
        ("not source.ip:*", {"evil"}),
        (term("user.name", HOSTILE), {"evil"}),
        (f'"{HOSTILE.replace(chr(34), "")}"', {"evil"}),
    ],
)
def test_sql_finds_exactly_the_matching_events(store: SQLiteStore, text: str, expected: set[str]) -> None:
    assert ids(store, text) == expected


def test_values_are_bound_parameters_never_sql(store: SQLiteStore) -> None:
    compiled = to_sql(parse(term("user.name", HOSTILE) + " and " + term("message", HOSTILE)), TERM_FIELDS)
    assert "DROP" not in compiled.where and "<script>" not in compiled.where
    assert HOSTILE in compiled.params
    assert store.count_events() == 21  # still there


def test_histogram_counts_and_total(store: SQLiteStore) -> None:
    start, end = T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)
    page = store.find_events(parse("session"), start, end, limit=5, histogram=True)
    assert page.total == 20 and len(page.items) == 5
    assert page.interval == timedelta(seconds=1)
    assert sum(b.count for b in page.histogram) == 20
    assert [b.count for b in page.histogram if b.start == T0 + timedelta(seconds=3)] == [1]
    assert [e.id for e in page.items] == ["ev19", "ev18", "ev17", "ev16", "ev15"]  # newest first
    assert store.find_events(parse("session"), start, end, limit=5).total == -1  # not counted


def test_elastic_dsl_shapes() -> None:
    dsl = to_elastic(parse('source.ip:10.0.0.0/8 and event.action:"login failed" and not user.name:admin*'))
    assert dsl == {"bool": {"filter": [
        {"term": {"source.ip": "10.0.0.0/8"}},
        {"term": {"event.action": "login failed"}},
        {"bool": {"must_not": [{"wildcard": {"user.name": {"value": "admin*", "case_insensitive": False}}}]}},
    ]}}  # fmt: skip
    assert to_elastic(parse("destination.port:<=80 or x*")) == {"bool": {"should": [
        {"range": {"destination.port": {"lte": 80}}},
        {"simple_query_string": {"query": "x*", "flags": "PREFIX", "lenient": True}},
    ], "minimum_should_match": 1}}  # fmt: skip
    assert to_elastic(parse('message:"a b"')) == {"match_phrase": {"message": "a b"}}
    assert to_elastic(parse("event.id:abc")) == {"ids": {"values": ["abc"]}}
    assert to_elastic(None) == {"match_all": {}}


def test_event_ids_are_events_in_the_store(store: SQLiteStore) -> None:
    assert isinstance(store.get_event("evil"), Event)


def test_single_pass_and_two_query_paths_agree(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from store import sqlite_analyst

    def run() -> tuple[list[str], int, list[int]]:
        page = store.find_events(parse("session gate*"), T0 - timedelta(minutes=1), T0 + timedelta(minutes=1),
                                 limit=4, offset=3, histogram=True)  # fmt: skip
        return [e.id for e in page.items], page.total, [b.count for b in page.histogram]

    single = run()
    monkeypatch.setattr(sqlite_analyst, "SINGLE_PASS_LIMIT", 3)  # 20 matches: counted by GROUP BY instead
    assert run() == single
    assert single[0] == ["ev16", "ev15", "ev14", "ev13"] and single[1] == 20
