"""The compiled per-event loops (detections/sigma/_hitmask.c) against their Python specification.

``AnchorIndex.hit_mask`` and ``AnchorIndex._value_mask`` in Python are the specification; the C
loop must give the same hit masks and leave the same value caches on any input, hostile ones
included (value-mark characters, non-ASCII text, numbers, arrays).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from typing import Any

import ahocorasick
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detections.sigma import index as index_module
from detections.sigma.index import AnchorIndex, _marks, route_key
from detections.sigma.matcher import MatchContext
from store.errors import EventValidationError
from tests.detections.sigma.test_matcher import windows_rule
from tests.helpers import event

NOT_BUILT = (
    "the C extension detections.sigma._hitmask is not built (CitySOC was installed without a C compiler), "
    "so the Python loop runs instead"
)


def use_implementation(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the anchor index use the compiled loop ("compiled") or the Python one with dict caches ("python")."""
    if name == "python":  # as installed without a C compiler
        monkeypatch.setattr(index_module, "_compiled", None)
        monkeypatch.setattr(index_module, "_new_cache", dict)
    elif index_module._compiled is None:
        pytest.skip(NOT_BUILT)
    return name


def test_the_extension_is_built_wherever_a_c_compiler_is() -> None:
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler on this machine: the Python loop is the one in use")
    assert index_module._compiled is not None, "a C compiler is here but detections.sigma._hitmask was not built"


@pytest.fixture(scope="module")
def rules() -> list[Any]:
    return [
        windows_rule("sel: {CommandLine|contains: [mimikatz, '::', ' -enc ']}\ncondition: sel"),
        windows_rule("sel: {Image|endswith: '\\cmd.exe', ParentImage: 'C:\\Windows\\explorer.exe'}\ncondition: sel"),
        windows_rule("sel: {Image|startswith: 'C:\\Temp\\'}\nfilter: {CommandLine|contains: update}\n"
                     "condition: sel and not filter"),
        windows_rule("keywords: [sekurlsa, 'kerberos::', mimikatz]\ncondition: keywords"),
        windows_rule("sel: {EventID: 4688, CommandLine|endswith: [.ps1, '\\x.exe']}\ncondition: sel"),
        windows_rule("sel: {IntegrityLevel: [High, System], User|startswith: 'NT AUTHORITY'}\ncondition: sel"),
        windows_rule("sel: {Level: [4, '0x4'], Image|contains: temp}\ncondition: sel"),
    ]  # fmt: skip


_FRAGMENTS = ["mimikatz", "MimiKatz", "::", " -enc ", "\\cmd.exe", "c:\\temp\\", "C:\\Temp\\", "update", "kerberos::",
              "sekurlsa", ".ps1", "\\x.exe", "high", "System", "nt authority", "explorer.exe", "\x02", "\x03", "\x1c",
              "é", "İ", "ß", "x", " ", "4688", ""]  # fmt: skip
_TEXT = st.lists(st.sampled_from(_FRAGMENTS), max_size=6).map("".join)
_NUMBER = st.integers(0, 5000)
#: long values (raw records): past the automaton's short-value cases
_LONG = _TEXT.map(lambda text: (text + " ") * 60)
#: values each field's schema type accepts: text fields text; flattened event data also numbers and arrays
_FIELDS = {
    "process.command_line": st.one_of(_TEXT, _LONG), "process.executable": _TEXT, "process.parent.executable": _TEXT,
    "event.original": st.one_of(_TEXT, _LONG), "user.name": _TEXT, "host.name": _TEXT,
    "winlog.event_id": st.one_of(_TEXT, _NUMBER),
    "winlog.event_data.IntegrityLevel": st.one_of(_TEXT, _NUMBER, st.tuples(_TEXT, _TEXT)),
    "winlog.event_data.Level": st.one_of(_TEXT, _NUMBER, st.tuples(_NUMBER, _TEXT)),
}  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.fixed_dictionaries({}, optional=_FIELDS), min_size=1, max_size=8))
def test_the_compiled_loop_gives_the_python_masks_and_caches(
    events: list[dict[str, Any]], rules: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    if index_module._compiled is None:
        pytest.skip(NOT_BUILT)
    compiled = AnchorIndex(rules)
    with monkeypatch.context() as patched:  # the specification as installed without a compiler: dict caches
        patched.setattr(index_module, "_new_cache", dict)
        python = AnchorIndex(rules)
    assert isinstance(python._seen["process.command_line"], dict)
    for fields in events * 2:  # the second round answers from the caches
        shaped = {"winlog.channel": "Microsoft-Windows-Sysmon/Operational", **fields}
        from_c = compiled.hit_mask(MatchContext(event(0, shaped)))
        with monkeypatch.context() as patched:
            patched.setattr(index_module, "_compiled", None)
            from_python = python.hit_mask(MatchContext(event(0, shaped)))
        assert from_c == from_python, shaped
        assert _cached(compiled) == _cached(python)
        assert compiled._masks == python._masks


def _cached(index: AnchorIndex) -> dict[str, dict[str, int]]:
    """What an index's value caches hold (dicts, or the compiled ValueCache)."""
    return {name: dict(cache.items()) for name, cache in index._seen.items()}  # type: ignore[attr-defined]


def test_a_value_carrying_the_marks_finds_only_the_literals_it_holds(rules: list[Any]) -> None:
    index = AnchorIndex(rules)
    start, end, _ = index._automata["process.executable"][1:]
    # a suffix literal followed by the end mark inside the value is not at the value's end
    hostile = f"c:\\users\\cmd.exe{end}\\evil.exe"
    as_python = index._value_mask(MatchContext(event(0, {})), "process.executable", hostile)
    index._seen["process.executable"].clear()
    fields = {"process.executable": hostile}
    assert index_module._compiled is None or index.hit_mask(MatchContext(event(0, fields))) == as_python
    plain = index._value_mask(MatchContext(event(0, {})), "process.executable", "c:\\users\\cmd.exe\\evil.exe")
    assert as_python == plain and start not in hostile


def test_marks_avoid_the_characters_of_the_literals() -> None:
    start, end, stand_in = _marks(["a\x02b", "\x03", "\x1c\x1d"])
    assert len({start, end, stand_in}) == 3 and not {start, end, stand_in} & set("a\x02b\x03\x1c\x1d")


def test_route_key_reads_the_named_fields_of_a_dict_an_event_or_any_mapping() -> None:
    fields = {"winlog.channel": "Security", "winlog.event_id": 4688}
    assert route_key(fields, ("winlog.event_id", "event.dataset", "winlog.channel")) == (4688, None, "Security")
    assert route_key(event(0, fields).fields, ("winlog.channel",)) == ("Security",)
    assert route_key(_Mapping(fields), ("event.dataset", "winlog.channel")) == (None, "Security")


class _Mapping(Mapping[str, Any]):
    """A mapping that is not a dict, as an event read back lazily from its stored JSON may hold."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_fields_in_another_kind_of_mapping_are_read_by_the_python_loop(rules: list[Any]) -> None:
    fields = {"winlog.channel": "Microsoft-Windows-Sysmon/Operational", "process.command_line": "run mimikatz"}
    index = AnchorIndex(rules)
    expected = index.hit_mask(MatchContext(event(0, fields)))
    lazy = event(0, fields)
    object.__setattr__(lazy, "fields", _Mapping(fields))
    assert expected and index.hit_mask(MatchContext(lazy)) == expected
    assert index.match(MatchContext(lazy)) == index.match(MatchContext(event(0, fields))) == [0]
    compiled = index_module._compiled
    assert compiled is None or compiled(_Mapping(fields), index._tables, _missing, None, {}, 10, 10) is None


# ------------------------------------------------------------------ the C function on its own


def _table(automaton: Any, seen: dict[Any, int] | None = None) -> tuple[Any, ...]:
    return (seen if seen is not None else {}, None, automaton, "\x02", "\x03", "\x1c", None, True, None, None)


def _missing(ctx: Any, name: str, value: Any) -> int:
    raise AssertionError(f"miss() called for {name}={value!r}")


def test_masks_wider_than_the_stack_buffer_are_ored_exactly() -> None:
    compiled = index_module._compiled
    if compiled is None:
        pytest.skip(NOT_BUILT)
    automaton = ahocorasick.Automaton()
    wide, wider = 1 << 20_000 | 1, 1 << 70_000 | 1 << 3  # 667 and 2,334 digits: past the 512 on the stack
    automaton.add_word("ab", wide)
    automaton.add_word("cd\x03", wider)  # a suffix
    automaton.make_automaton()
    tables = {"f": _table(automaton), "g": _table(None, {"x": 1 << 40_000})}
    masks: dict[int, int] = {}
    assert compiled({"f": "xxABxxCD", "g": "x"}, tables, _missing, None, masks, 100, 100) == wide | wider | 1 << 40_000
    assert compiled({"f": "cd ab"}, tables, _missing, None, masks, 100, 100) == wide  # "cd" not at the end
    assert tables["f"][0] == {"xxABxxCD": wide | wider, "cd ab": wide} and set(masks) == {wide | wider, wide}


def test_bad_tables_and_masks_raise_instead_of_guessing() -> None:
    compiled = index_module._compiled
    if compiled is None:
        pytest.skip(NOT_BUILT)
    with pytest.raises(TypeError, match="10-tuple"):
        compiled({"f": "x"}, {"f": ("not", "a", "table")}, _missing, None, {}, 10, 10)
    with pytest.raises(ValueError, match="negative"):
        compiled({"f": "x"}, {"f": _table(None, {"x": -1})}, _missing, None, {}, 10, 10)
    with pytest.raises(TypeError, match="did not return an int"):
        compiled({"f": 7}, {"f": _table(None)}, lambda ctx, name, value: "seven", None, {}, 10, 10)
    with pytest.raises(TypeError, match="wrong type"):
        compiled({"f": "x"}, {"f": ({}, None, None, "", "\x03", "\x1c", None, True, None, None)}, _missing, None,
                 {}, 10, 10)  # fmt: skip
    with pytest.raises(TypeError, match="wrong type"):  # a one-character substring cannot use the pair map
        compiled({"f": "x"}, {"f": ({}, None, None, "\x02", "\x03", "\x1c", ("x",), True, b"", None)}, _missing, None,
                 {}, 10, 10)  # fmt: skip
    with pytest.raises(TypeError, match="takes 7 arguments"):
        compiled({}, {})
    assert compiled({"f": 7}, {"f": _table(None)}, lambda ctx, name, value: value * 2, None, {}, 10, 10) == 14


# ------------------------------------------------------------------ the compiled automaton (DFA)

_KEY_TEXT = st.text(alphabet="ab:\\.x\x02\x03\x1céK", min_size=1, max_size=5)
_VALUE_TEXT = st.text(alphabet="aAbB:\\.xX\x02\x03\x1cé K", max_size=40)


@settings(max_examples=400, deadline=None)
@given(keys=st.dictionaries(_KEY_TEXT, st.integers(0, 1 << 70), max_size=12), values=st.lists(_VALUE_TEXT, max_size=6))
def test_the_dfa_finds_what_the_aho_corasick_automaton_finds(keys: dict[str, int], values: list[str]) -> None:
    """Automaton.search(v) == the OR over pyahocorasick's matches in start + v.lower() (marks replaced) + end."""
    if index_module._compiled is None:
        pytest.skip(NOT_BUILT)
    from detections.sigma._hitmask import Automaton

    start, end, stand_in = "\x02", "\x03", "\x1c"
    reference = ahocorasick.Automaton()
    for key, mask in keys.items():
        reference.add_word(key, mask)
    dfa = Automaton(list(keys.items()), start, end, stand_in)
    for value in values:
        if not value.isascii():
            with pytest.raises(ValueError, match="ASCII"):
                dfa.search(value)
            continue
        expected = 0
        if keys:
            reference.make_automaton()
            searched = start + value.lower().replace(start, stand_in).replace(end, stand_in) + end
            for _, mask in reference.iter(searched):
                expected |= mask
        assert dfa.search(value) == expected, (keys, value)


def test_the_dfa_skips_keys_no_ascii_value_can_hold_and_refuses_bad_keys() -> None:
    if index_module._compiled is None:
        pytest.skip(NOT_BUILT)
    from detections.sigma._hitmask import Automaton

    dfa = Automaton([("é", 1), ("\x02ab", 2), ("b\x03", 4), ("zz", 1 << 100)], "\x02", "\x03", "\x1c")
    assert dfa.search("AB") == 2 | 4 and dfa.search("cab") == 4 and dfa.search("ZZz") == 1 << 100
    assert dfa.search("b\x03a") == 0  # a mark inside the value is not the value's end
    assert dfa.states == 1 + 3 + 2 + 2 and dfa.__sizeof__() > dfa.states * 4
    with pytest.raises(TypeError, match="key 0"):
        Automaton([("", 1)], "\x02", "\x03", "\x1c")
    with pytest.raises(TypeError, match="key 1"):
        Automaton([("a", 1), ("b", -1)], "\x02", "\x03", "\x1c")
    with pytest.raises(ValueError, match="must differ"):
        Automaton([("a", 1)], "\x02", "\x02", "\x1c")
    with pytest.raises(ValueError, match="one ASCII character"):
        Automaton([("a", 1)], "\x02", "\x03", "é")


def test_an_index_searches_ascii_values_with_its_dfas_and_other_values_with_the_automata(rules: list[Any]) -> None:
    index = AnchorIndex(rules)
    if index_module._compiled is None:
        assert index._dfas == {}
        pytest.skip(NOT_BUILT)
    assert set(index._dfas) == set(index._automata)
    ascii_value, other = "C:\\Temp\\MimiKatz.exe", "C:\\Temp\\MimiKatz-é.exe"
    ctx = MatchContext(event(0, {}))
    as_python = [index._value_mask(ctx, "process.command_line", v) for v in (ascii_value, other)]
    index._seen["process.command_line"].clear()
    fields = {"winlog.channel": "Microsoft-Windows-Sysmon/Operational"}
    for value, expected in zip((ascii_value, other), as_python, strict=True):
        found = index.hit_mask(MatchContext(event(0, {**fields, "process.command_line": value})))
        assert expected and found == expected


# ------------------------------------------------------------------ the compiled value cache

_CACHE_KEYS = st.one_of(
    st.text(alphabet="ab", max_size=3),  # short, often equal
    st.text(max_size=40),  # any kind of str: 1-, 2- and 4-byte characters
    st.text(alphabet="xyz", min_size=40, max_size=300),  # past the hash's 16- and 48-byte steps
)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _CACHE_KEYS, st.integers(0, 1 << 80)),
        st.tuples(st.just("get"), _CACHE_KEYS, st.just(0)),
        st.tuples(st.just("clear"), st.just(""), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS)
def test_the_value_cache_behaves_as_a_dict_of_text_values(ops: list[tuple[str, str, int]]) -> None:
    if index_module._compiled is None:
        pytest.skip(NOT_BUILT)
    from detections.sigma._hitmask import ValueCache

    cache, model = ValueCache(), {}
    for op, key, mask in ops:
        fresh = "".join(list(key))  # an equal str that is another object, as every event's values are
        if op == "set":
            cache[key] = mask
            model[key] = mask
        elif op == "get":
            assert cache.get(fresh) == model.get(fresh) and (fresh in cache) == (fresh in model)
        else:
            cache.clear()
            model.clear()
        assert len(cache) == len(model)
    assert dict(cache.items()) == model
    for key, mask in model.items():
        assert cache["".join(list(key))] == mask


def test_the_value_cache_takes_text_keys_and_int_masks_only() -> None:
    if index_module._compiled is None:
        pytest.skip(NOT_BUILT)
    from detections.sigma._hitmask import ValueCache

    cache = ValueCache()
    for _ in range(5_000):  # growing past the first tables keeps every value
        cache[f"value {_}"] = _
    assert len(cache) == 5_000 and cache.get("value 4999") == 4_999 and cache.get("value 5000") is None
    assert cache.get(7) is None and cache.get(("a",), -1) == -1 and 7 not in cache
    with pytest.raises(TypeError, match="keys are str"):
        cache[7] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="keys are str"):
        cache["x"] = "1"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="clear"):
        del cache["value 1"]  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        cache["absent"]
    cache.clear()
    assert len(cache) == 0 and cache.items() == []


def test_colliding_values_are_told_apart_and_a_flood_of_them_is_not_remembered() -> None:
    if index_module._compiled is None:
        pytest.skip(NOT_BUILT)
    from detections.sigma._hitmask import ValueCache

    cache = ValueCache(hash_mask=0)  # every value hashes alike: only the text tells them apart
    values = [f"C:\\Windows\\System32\\svc{n:04}.exe" for n in range(200)]
    for n, value in enumerate(values):
        cache[value] = n
    assert 0 < len(cache) <= 32  # the probe limit: crafted collisions cost 32 comparisons at most
    for n, value in enumerate(values):
        assert cache.get("".join(list(value))) in (n, None)  # never another value's mask
    assert cache.get(values[0]) == 0 and cache.get(values[-1]) is None


# ------------------------------------------------------------------ the context's compiled __missing__

_CONTEXT_VALUES = st.one_of(
    st.text(max_size=12), st.sampled_from(["MiMiKaTz", "İSTANBUL", "STRASSE ß", "\udcff"]), st.integers(-5, 5),
    st.booleans(), st.floats(allow_nan=False, width=32), st.tuples(st.text(max_size=4), st.integers(0, 3)),
)  # fmt: skip


_CONTEXT_FIELDS = st.sampled_from(["winlog.event_data.A", "winlog.event_data.B", "process.pid"])


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(_CONTEXT_FIELDS, _CONTEXT_VALUES, max_size=3))
def test_the_compiled_context_lower_cases_as_the_python_one(fields: dict[str, Any]) -> None:
    from detections.sigma import matcher

    if matcher._ContextBase is dict:
        pytest.skip(NOT_BUILT)
    try:
        shaped = event(0, fields)
    except EventValidationError:
        return  # a value the field's type refuses (text in process.pid): no event to read
    assert fields.keys() <= shaped.fields.keys()
    compiled, python = MatchContext(shaped), MatchContext(shaped)
    for name in ("winlog.event_data.A", "winlog.event_data.B", "process.pid", "@timestamp", "event.id", "user.name"):
        assert compiled[name] == python._lower_missing(name), name
    assert dict(compiled) == dict(python)
