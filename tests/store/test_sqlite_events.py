"""The embedded store's event tables: posting rows, duplicates, deletes, and the upgrade of files from before them."""

from __future__ import annotations

import marshal
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from store.event import Event, format_ts
from store.query import parse
from store.sqlite import SQLiteStore
from store.sqlite_events import _ENTRY_BUILDERS, FTS_AUTOMERGE, _entry_general, index_entry
from store.sqlite_upgrade import edit_table_sql, table_sql
from tests.helpers import T0, event

#: The event tables as the previous version created them (store/sqlite.py and store/sqlite_analyst.py).
OLD_SCHEMA = """
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    ingested TEXT NOT NULL,
    dataset TEXT,
    doc TEXT NOT NULL CHECK (json_valid(doc))
);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_dataset_ts ON events(dataset, ts);
CREATE VIRTUAL TABLE events_fts USING fts5(id UNINDEXED, body, tokenize='unicode61');
CREATE TABLE event_terms (
    field TEXT NOT NULL, value TEXT NOT NULL, event_id TEXT NOT NULL, ts TEXT,
    PRIMARY KEY (field, value, event_id)
) WITHOUT ROWID;
CREATE INDEX event_terms_ts ON event_terms(field, value, ts);
"""
OLD_TERM_FIELDS = ("source.ip", "destination.ip", "user.name", "event.action", "event.dataset", "event.kind")


def sample() -> list[Event]:
    """Forty events over 40 s: two datasets, logins from four addresses, some failed."""
    return [
        event(i, {
            "source.ip": f"10.0.0.{i % 4}", "destination.ip": "10.9.9.9", "user.name": "admin" if i % 5 == 0 else "bob",
            "event.action": "login failed" if i % 3 == 0 else "login", "event.kind": "event",
            "event.dataset": "linux.auth" if i % 2 else "web.access", "message": f"session {i} opened from gateway",
            "observer.hostname": "collector-7", "event.created": format_ts(T0),
        }, event_id=f"ev{i:02d}")
        for i in range(40)
    ]  # fmt: skip


QUERIES = [
    "gateway",
    "session and opened",
    '"session 7 opened"',
    "source.ip:10.0.0.1",
    "source.ip:10.0.0.0/30 and not user.name:admin",
    'event.action:"login failed"',
    "event.action:log*",
    "event.dataset:linux.auth",
    "event.dataset:web*",
    "event.kind:event and user.name:admin",
    "event.id:ev1*",
]


def found(store: SQLiteStore, query: str, seconds: tuple[float, float] = (-60, 60)) -> list[str]:
    start, end = (T0 + timedelta(seconds=s) for s in seconds)
    return [e.id for e in store.find_events(parse(query), start, end, limit=500).items]


def expected(events: list[Event]) -> dict[str, list[str]]:
    newest_first = sorted(events, key=lambda e: (-e.timestamp.timestamp(), e.id))
    f = {e.id: e.fields for e in events}

    def where(test: object) -> list[str]:
        return [e.id for e in newest_first if test(f[e.id])]  # type: ignore[operator]

    return {
        "gateway": where(lambda x: True),
        "session and opened": where(lambda x: True),
        '"session 7 opened"': ["ev07"],
        "source.ip:10.0.0.1": where(lambda x: x["source.ip"] == "10.0.0.1"),
        "source.ip:10.0.0.0/30 and not user.name:admin": where(lambda x: x["user.name"] != "admin"),
        'event.action:"login failed"': where(lambda x: x["event.action"] == "login failed"),
        "event.action:log*": where(lambda x: True),
        "event.dataset:linux.auth": where(lambda x: x["event.dataset"] == "linux.auth"),
        "event.dataset:web*": where(lambda x: x["event.dataset"] == "web.access"),
        "event.kind:event and user.name:admin": where(lambda x: x["user.name"] == "admin"),
        "event.id:ev1*": [i for i in where(lambda x: True) if i.startswith("ev1")],
    }


def test_every_search_form_finds_exactly_the_matching_events(tmp_path: Path) -> None:
    events = sample()
    store = SQLiteStore(tmp_path / "s.db")
    try:
        store.put_events(events)
        want = expected(events)
        for query in QUERIES:
            assert found(store, query) == want[query], query
        # provenance and timestamps are not words of the body; they are still fields
        assert found(store, "collector") == []
        assert len(found(store, "observer.hostname:collector-7")) == 40
    finally:
        store.close()


def test_a_common_value_of_one_second_is_one_posting_row(tmp_path: Path) -> None:
    events = [event(0.001 * i, {"event.action": "scan", "source.ip": f"10.1.0.{i}"}, event_id=f"s{i}")
              for i in range(5)]  # fmt: skip
    store = SQLiteStore(tmp_path / "s.db")
    try:
        store.put_events(events)
        conn = store._conn()
        rows = conn.execute("SELECT rid, more FROM event_terms WHERE field='event.action'").fetchall()
        assert [tuple(r) for r in rows] == [(1, "[0,1,2,3,4]")]
        assert conn.execute("SELECT count(*) FROM event_terms WHERE field='source.ip'").fetchone()[0] == 5
        assert sorted(found(store, "event.action:scan")) == [f"s{i}" for i in range(5)]
        assert store.delete_events(["s0", "s3"]) == 2
        rows = conn.execute("SELECT rid, more FROM event_terms WHERE field='event.action'").fetchall()
        assert [tuple(r) for r in rows] == [(2, "[0,1,3]")]  # re-keyed on its first remaining event
        assert sorted(found(store, "event.action:scan")) == ["s1", "s2", "s4"]
        assert found(store, "source.ip:10.1.0.3") == []
        assert conn.execute("SELECT count(*) FROM event_terms WHERE field='source.ip'").fetchone()[0] == 3
    finally:
        store.close()


def test_the_term_window_is_cut_by_second_and_checked_exactly(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    try:
        store.put_events([event(s, {"user.name": "eve"}, event_id=f"at{s}") for s in (9.5, 10.0, 10.4, 20.0)])
        assert found(store, "user.name:eve", (10, 20)) == ["at10.4", "at10.0"]  # end excluded, start included
        assert found(store, "user.name:eve", (9.6, 10.2)) == ["at10.0"]  # same second as 9.5 and 10.4: cut by ts
    finally:
        store.close()


def test_duplicates_are_skipped_and_not_indexed_again(tmp_path: Path) -> None:
    events = sample()
    store = SQLiteStore(tmp_path / "s.db")
    try:
        assert store.put_events(events[:10]) == events[:10]
        again = store.put_events(events[5:20])  # half stored: the rest goes in, with its own index entries
        assert [e.id for e in again] == [e.id for e in events[10:20]]
        assert store.put_events(events[:20]) == []
        # after a batch with stored events the next is checked first; a new one still goes in
        assert [e.id for e in store.put_events(events[15:25])] == [e.id for e in events[20:25]]
        assert store.count_events() == 25
        assert len(found(store, "gateway")) == 25
        assert len(found(store, "destination.ip:10.9.9.9")) == 25
        terms = store._conn().execute("SELECT rid, more FROM event_terms WHERE field='destination.ip'").fetchall()
        rids = sorted(first + int(x) for first, more in terms for x in more.strip("[]").split(","))
        assert rids == [r[0] for r in store._conn().execute("SELECT rid FROM events ORDER BY rid")]
    finally:
        store.close()


def test_deleted_events_leave_no_index_entries_and_their_rids_are_not_reused(tmp_path: Path) -> None:
    events = sample()
    store = SQLiteStore(tmp_path / "s.db")
    try:
        store.put_events(events)
        newest = store._conn().execute("SELECT max(rid) FROM events").fetchone()[0]
        assert store.delete_events([e.id for e in events[20:]]) == 20
        assert len(found(store, "gateway")) == 20
        assert len(found(store, "destination.ip:10.9.9.9")) == 20
        again = event(100, {"message": "gateway reboot", "destination.ip": "10.9.9.9"}, event_id="late")
        store.put_events([again])
        assert store._conn().execute("SELECT rid FROM events WHERE id='late'").fetchone()[0] > newest
        assert found(store, "reboot", (0, 200)) == ["late"]
        assert store.delete_events([e.id for e in events[:20]] + ["late"]) == 21
        assert store._conn().execute("SELECT count(*) FROM event_terms").fetchone()[0] == 0
        assert found(store, "gateway", (0, 200)) == []
        # the full-text index itself forgot them (a search would hide stale entries by the join)
        fts = store._conn().execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'gateway OR session'")
        assert fts.fetchone()[0] == 0
    finally:
        store.close()


def _old_file(path: Path, events: list[Event]) -> None:
    """A database file as the previous version wrote it, with ``events`` in it."""
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    for e in events:
        ts = format_ts(e.timestamp)
        conn.execute("INSERT INTO events VALUES (?,?,?,?,?)", (e.id, ts, ts, e.get("event.dataset"), e.to_json()))
        values = [v for value in e.fields.values() for v in (value if isinstance(value, tuple) else (value,))]
        body = " ".join(map(str, values))
        conn.execute("INSERT INTO events_fts(id, body) VALUES (?,?)", (e.id, body))
        for name in OLD_TERM_FIELDS:
            if name in e.fields:
                conn.execute("INSERT INTO event_terms VALUES (?,?,?,?)", (name, str(e.fields[name]), e.id, ts))
    conn.commit()
    conn.close()


def test_a_file_of_the_previous_layout_is_upgraded_once_with_the_same_search_results(tmp_path: Path) -> None:
    events = sample()
    path = tmp_path / "old.db"
    _old_file(path, events)
    conn = sqlite3.connect(path)  # what the previous version's search found (its SQL, on its tables)
    before = [r[0] for r in conn.execute(
        "SELECT e.id FROM events e WHERE e.id IN (SELECT id FROM events_fts WHERE events_fts MATCH 'gateway') "
        "AND e.id IN (SELECT event_id FROM event_terms WHERE field='source.ip' AND value='10.0.0.1') "
        "ORDER BY e.ts DESC, e.id")]  # fmt: skip
    conn.close()
    want = expected(events)
    for _ in range(2):  # the second open finds the upgrade done
        store = SQLiteStore(path)
        try:
            assert found(store, "gateway and source.ip:10.0.0.1") == before == want["source.ip:10.0.0.1"]
            for query in QUERIES:
                assert found(store, query) == want[query], query
            assert store.count_events() == 40 and store.get_event("ev07") == events[7]
            columns = {r[1] for r in store._conn().execute("PRAGMA table_info(event_terms)")}
            assert columns == {"field", "value", "epoch", "rid", "more"}
            leftover = store._conn().execute("SELECT count(*) FROM sqlite_master WHERE name='events_old'")
            assert leftover.fetchone()[0] == 0
        finally:
            store.close()
    store = SQLiteStore(path)
    try:  # the upgraded file goes on: new events get rids after the old ones, deletes find the old ones' entries
        store.put_events([event(50, {"message": "gateway reboot", "source.ip": "10.0.0.1"}, event_id="new")])
        assert found(store, "gateway and source.ip:10.0.0.1", (-60, 100))[0] == "new"
        assert store.delete_events([e.id for e in events]) == 40
        assert found(store, "gateway", (-60, 100)) == ["new"]
        assert store._conn().execute("SELECT count(*) FROM event_terms WHERE field='user.name'").fetchone()[0] == 0
    finally:
        store.close()


def _first_rid_layout(conn: sqlite3.Connection) -> None:
    """Turn a current file into what the first ``rid`` layout wrote: same rows, the JSON CHECK, default merging."""
    conn.execute("BEGIN IMMEDIATE")
    assert edit_table_sql(conn, "events", "doc TEXT NOT NULL\n", "doc TEXT NOT NULL CHECK (json_valid(doc))\n")
    conn.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('automerge', 4)")
    conn.execute("COMMIT")


def test_a_file_of_the_first_rid_layout_is_tuned_in_place_with_the_same_search_results(tmp_path: Path) -> None:
    events = sample()
    path = tmp_path / "v1.db"
    store = SQLiteStore(path)
    try:
        store.put_events(events)
        _first_rid_layout(store._conn())
    finally:
        store.close()
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # the file really has the old constraint
        conn.execute("INSERT INTO events(id, ts, ingested, doc) VALUES ('x', 't', 't', 'not json')")
    assert conn.execute("SELECT v FROM events_fts_config WHERE k='automerge'").fetchone()[0] == 4
    rows_before = conn.execute("SELECT * FROM events ORDER BY rid").fetchall()
    conn.close()
    want = expected(events)
    for _ in range(2):  # the second open finds it done
        store = SQLiteStore(path)
        try:
            for query in QUERIES:
                assert found(store, query) == want[query], query
            conn = store._conn()
            assert "json_valid" not in (table_sql(conn, "events") or "")
            assert conn.execute("SELECT v FROM events_fts_config WHERE k='automerge'").fetchone()[0] == FTS_AUTOMERGE
            assert [tuple(r) for r in conn.execute("SELECT * FROM events ORDER BY rid")] == rows_before
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.execute("INSERT INTO events_fts(events_fts) VALUES ('integrity-check')")  # raises if inconsistent
        finally:
            store.close()
    store = SQLiteStore(path)
    try:  # and goes on: new events after the old ones, deletes find the old ones' entries
        store.put_events([event(50, {"message": "gateway reboot", "source.ip": "10.0.0.1"}, event_id="new")])
        assert store.delete_events([e.id for e in events]) == 40
        assert found(store, "gateway", (-60, 100)) == ["new"]
        assert found(store, "source.ip:10.0.0.1", (-60, 100)) == ["new"]
    finally:
        store.close()


def test_a_new_file_merges_its_full_text_segments_sixteen_at_a_time(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    try:
        conn = store._conn()
        assert conn.execute("SELECT v FROM events_fts_config WHERE k='automerge'").fetchone()[0] == FTS_AUTOMERGE == 16
        assert "json_valid" not in (table_sql(conn, "events") or "")
    finally:
        store.close()


def test_two_stores_opening_an_old_file_at_once_upgrade_it_once(tmp_path: Path) -> None:
    events = sample()
    path = tmp_path / "old.db"
    _old_file(path, events)
    errors: list[BaseException] = []
    stores: list[SQLiteStore] = []

    def open_store() -> None:
        try:
            stores.append(SQLiteStore(path))
        except BaseException as exc:  # reported below: the test fails with it
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        for store in stores:
            assert store.count_events() == 40
            assert found(store, "source.ip:10.0.0.1") == expected(events)["source.ip:10.0.0.1"]
        postings = stores[0]._conn().execute("SELECT count(*) FROM event_terms WHERE field='destination.ip'")
        assert postings.fetchone()[0] == 40  # one per second: not indexed twice
    finally:
        for store in stores:
            store.close()


def test_an_unreadable_old_document_is_kept_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events = sample()[:3]
    path = tmp_path / "old.db"
    _old_file(path, events)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE events SET doc = '{\"@timestamp\": \"not a time\"}' WHERE id = 'ev01'")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.count_events() == 3
        assert sorted(found(store, "gateway")) == ["ev00", "ev02"]
        assert "is not indexed" in caplog.text and "not a time" in caplog.text
    finally:
        store.close()


def test_two_writers_get_distinct_rids_and_complete_index_entries(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    errors: list[BaseException] = []

    def write(prefix: str) -> None:
        store = SQLiteStore(path)  # its own connection, as a second collector process has
        try:
            for n in range(20):
                batch = [event(n + i / 10, {"user.name": prefix, "message": f"{prefix} batch {n}"},
                               event_id=f"{prefix}-{n}-{i}") for i in range(10)]  # fmt: skip
                store.put_events(batch)
        except BaseException as exc:  # reported below: the test fails with it
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(name,)) for name in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = SQLiteStore(path)
    try:
        assert store.count_events() == 400
        for name in ("alice", "bob"):
            assert len(found(store, f"user.name:{name}", (-60, 100))) == 200
            assert len(found(store, name, (-60, 100))) == 200
    finally:
        store.close()


def test_rids_numbered_before_the_lock_are_renumbered_when_another_writer_came_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import sqlite_events

    store = SQLiteStore(tmp_path / "s.db")
    try:
        store.put_events(sample()[:10])
        real = sqlite_events.next_rid

        def stale(conn: sqlite3.Connection) -> int:  # what a writer sees before another one commits
            return real(conn) - (0 if conn.in_transaction else 7)

        monkeypatch.setattr(sqlite_events, "next_rid", stale)
        store.put_events(sample()[10:20])
        rids = [r[0] for r in store._conn().execute("SELECT rid FROM events ORDER BY rid")]
        assert rids == list(range(1, 21))  # numbered from the first free rid under the lock
        assert found(store, "source.ip:10.0.0.1") == expected(sample()[:20])["source.ip:10.0.0.1"]
        assert len(found(store, "gateway")) == 20
    finally:
        store.close()


def test_index_entries_travel_on_the_wire_and_give_the_same_search_results(tmp_path: Path) -> None:
    events = sample()
    events.append(event(3, {"tags": ["a", "b", "a"], "source.ip": "10.0.0.9", "user.name": "bob"}, event_id="arr"))
    for e in events:
        e.to_json()
        index_entry(e)  # as a parse worker does
    arrived = [Event.from_wire(marshal.loads(marshal.dumps(e.to_wire()))) for e in events]  # noqa: S302 -- ours
    for sent, got in zip(events, arrived, strict=True):
        assert got.__dict__["_index"] == sent.__dict__["_index"]  # carried, not computed again
        ts, body, keys = index_entry(Event.from_json(sent.to_json()))  # what the writer would make (fields re-ordered)
        assert (ts, sorted(body.split()), sorted(keys)) == (got.__dict__["_index"][0],
                                                             sorted(got.__dict__["_index"][1].split()),
                                                             sorted(got.__dict__["_index"][2]))
    changed = arrived[0].with_fields({"user.name": "carol"})
    assert "_index" not in changed.__dict__  # a changed event is indexed anew
    assert "carol" in index_entry(changed)[1].split()
    carried, computed = SQLiteStore(tmp_path / "carried.db"), SQLiteStore(tmp_path / "computed.db")
    try:
        carried.put_events(arrived)
        computed.put_events([Event.from_json(e.to_json()) for e in events])
        for query in [*QUERIES, "source.ip:10.0.0.9", "user.name:bob and source.ip:10.0.0.9"]:
            assert found(carried, query) == found(computed, query), query
        rows = "SELECT field, value, epoch, rid, more FROM event_terms ORDER BY 1, 2, 3, 4"
        assert carried._conn().execute(rows).fetchall() == computed._conn().execute(rows).fetchall()
    finally:
        carried.close()
        computed.close()


def test_stored_documents_are_valid_json_without_the_check(tmp_path: Path) -> None:
    """What the dropped ``json_valid`` CHECK guaranteed holds by construction (``Event.to_json`` writes every doc)."""
    odd = [
        event(2, {"labels.big": str(2**70), "event.sequence": 2**62, "event.risk_score": 1e300}, event_id="big"),
        event(3, {"message": 'quotes " and \\ backslashes\n', "user.name": "zoë"}, event_id="escapes"),
    ]
    store = SQLiteStore(tmp_path / "s.db")
    try:
        store.put_events([*odd, *sample()])
        conn = store._conn()
        assert conn.execute("SELECT count(*) FROM events WHERE NOT json_valid(doc)").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 42
        for e in odd:
            assert store.get_event(e.id) == e
    finally:
        store.close()


def test_a_file_whose_check_cannot_be_removed_keeps_it_and_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from store import sqlite_events

    path = tmp_path / "v1.db"
    store = SQLiteStore(path)
    try:
        _first_rid_layout(store._conn())
    finally:
        store.close()

    def refuse(*_: object) -> bool:  # what a connection in SQLite's defensive mode answers to writable_schema
        raise sqlite3.OperationalError("table sqlite_master may not be modified")

    monkeypatch.setattr(sqlite_events, "edit_table_sql", refuse)
    for attempt in range(2):  # tuned once: the second open neither retries nor warns again
        caplog.clear()
        SQLiteStore(path).close()
        assert ("keeps its json_valid CHECK" in caplog.text) == (attempt == 0)
    store = SQLiteStore(path)
    try:
        conn = store._conn()
        assert "json_valid" in (table_sql(conn, "events") or "")
        assert conn.execute("SELECT v FROM events_fts_config WHERE k='automerge'").fetchone()[0] == FTS_AUTOMERGE
        store.put_events(sample())
        assert found(store, "source.ip:10.0.0.1") == expected(sample())["source.ip:10.0.0.1"]
    finally:
        store.close()


def test_a_lone_surrogate_in_hostile_text_is_stored_as_a_replacement_character(tmp_path: Path) -> None:
    # json.loads('"\\udcff"') gives a lone surrogate, which UTF-8 (so SQLite) cannot hold
    hostile = event(1, {"process.command_line": "cmd /c \udcff evil", "winlog.event_data.X\udcff": "v",
                        "host.name": "ws-1"})  # fmt: skip
    plain = event(2, {"process.command_line": "notepad.exe report.txt", "host.name": "ws-2"})
    store = SQLiteStore(tmp_path / "s.db")
    stored = store.put_events([hostile, plain])
    assert [e.id for e in stored] == [hostile.id, plain.id]
    back = store.get_event(hostile.id)
    assert back.fields["process.command_line"] == "cmd /c \ufffd evil"
    assert back.fields["winlog.event_data.X\ufffd"] == "v"
    assert store.get_event(plain.id).fields == plain.fields
    assert [e.id for e in store.search_events("evil")] == [hostile.id]
    assert store.put_events([hostile]) == []  # the same record again: the same id, already stored


def test_the_generated_index_entry_is_the_field_by_field_one(tmp_path: Path) -> None:
    """Per field list, generated code makes the body and posting keys; they equal the general path's exactly."""
    shapes = [
        *sample(),
        event(1, {"tags": ["a", "b", "a"], "related.ip": ["10.0.0.1", "10.0.0.2", "10.0.0.1"],
                  "event.category": ["network"], "host.ip": ["10.0.0.1", "10.0.0.2", "10.0.0.1"],
                  "host.mac": [], "source.port": 502, "event.risk_score": 2.5,
                  "network.bytes": 0, "message": "", "labels.site": "depot 4", "labels.count": 3,
                  "labels.ratio": 0.25, "labels.on": True, "labels.list": ["x", 1, False],
                  "log.syslog.structured_data.origin": "plc", "observer.name": "skipped",
                  "event.created": format_ts(T0)}),
        event(2, {"source.ip": "10.0.0.3", "user.name": "bob", "event.action": "login", "event.outcome": "failure"}),
    ]
    for e in shapes:
        index_entry(Event(e.id, e.timestamp, e.fields))  # the field list's first event: the general path
        ts, body, keys = index_entry(e)  # the second: its generated code
        assert callable(_ENTRY_BUILDERS[tuple(e.fields)])
        assert (body, keys) == _entry_general(e.fields, int(e.timestamp.timestamp()))
        assert ts == format_ts(e.timestamp)
    mixed = shapes[-1]
    assert index_entry(mixed)[2][0] == ("source.ip", "10.0.0.3", int(mixed.timestamp.timestamp()))
    words = index_entry(shapes[-2])[1].split(" ")
    assert words[:3] == ["a", "b", "a"] and "2.5" in words and "True" in words and "skipped" not in words
    assert [k[1] for k in index_entry(shapes[-2])[2] if k[0] == "host.ip"] == ["10.0.0.1", "10.0.0.2"]


def test_a_value_of_a_type_its_field_does_not_hold_takes_the_general_path() -> None:
    """An event built without validation (a keyword holding a number) still gets the general path's entry."""
    good = event(0, {"user.name": "bob", "source.ip": "10.0.0.3", "message": "hi"})
    bad = good._validated({"user.name": 42, "source.ip": "10.0.0.3", "message": "hi"})
    epoch = int(bad.timestamp.timestamp())
    index_entry(Event(good.id, good.timestamp, good.fields))  # the field list's first event
    assert index_entry(good)[1] == "bob 10.0.0.3 hi"
    assert callable(_ENTRY_BUILDERS[tuple(bad.fields)])  # so the bad event meets the generated code
    _, body, keys = index_entry(bad)
    assert (body, keys) == _entry_general(bad.fields, epoch) == ("42 10.0.0.3 hi", (("user.name", "42", epoch),
                                                                                    ("source.ip", "10.0.0.3", epoch)))
