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
from tests.detections.sigma.test_matcher import windows_rule
from tests.helpers import event

NOT_BUILT = (
    "the C extension detections.sigma._hitmask is not built (CitySOC was installed without a C compiler), "
    "so the Python loop runs instead"
)


def use_implementation(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the anchor index use the compiled loop ("compiled") or the Python one ("python")."""
    if name == "python":
        monkeypatch.setattr(index_module, "_compiled", None)
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
    compiled, python = AnchorIndex(rules), AnchorIndex(rules)
    for fields in events * 2:  # the second round answers from the caches
        shaped = {"winlog.channel": "Microsoft-Windows-Sysmon/Operational", **fields}
        from_c = compiled.hit_mask(MatchContext(event(0, shaped)))
        with monkeypatch.context() as patched:
            patched.setattr(index_module, "_compiled", None)
            from_python = python.hit_mask(MatchContext(event(0, shaped)))
        assert from_c == from_python, shaped
        assert compiled._seen == python._seen
        assert compiled._masks == python._masks


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
    return (seen if seen is not None else {}, None, automaton, "\x02", "\x03", "\x1c", None, True, None)


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
    tables = {"f": _table(automaton), "g": ({"x": 1 << 40_000}, None, None, "\x02", "\x03", "\x1c", None, True, None)}
    masks: dict[int, int] = {}
    assert compiled({"f": "xxABxxCD", "g": "x"}, tables, _missing, None, masks, 100, 100) == wide | wider | 1 << 40_000
    assert compiled({"f": "cd ab"}, tables, _missing, None, masks, 100, 100) == wide  # "cd" not at the end
    assert tables["f"][0] == {"xxABxxCD": wide | wider, "cd ab": wide} and set(masks) == {wide | wider, wide}


def test_bad_tables_and_masks_raise_instead_of_guessing() -> None:
    compiled = index_module._compiled
    if compiled is None:
        pytest.skip(NOT_BUILT)
    with pytest.raises(TypeError, match="9-tuple"):
        compiled({"f": "x"}, {"f": ("not", "a", "table")}, _missing, None, {}, 10, 10)
    with pytest.raises(ValueError, match="negative"):
        compiled({"f": "x"}, {"f": _table(None, {"x": -1})}, _missing, None, {}, 10, 10)
    with pytest.raises(TypeError, match="did not return an int"):
        compiled({"f": 7}, {"f": _table(None)}, lambda ctx, name, value: "seven", None, {}, 10, 10)
    with pytest.raises(TypeError, match="wrong type"):
        compiled({"f": "x"}, {"f": ({}, None, None, "", "\x03", "\x1c", None, True, None)}, _missing, None, {}, 10, 10)
    with pytest.raises(TypeError, match="wrong type"):  # a one-character substring cannot use the pair map
        compiled({"f": "x"}, {"f": ({}, None, None, "\x02", "\x03", "\x1c", ("x",), True, b"")}, _missing, None,
                 {}, 10, 10)  # fmt: skip
    with pytest.raises(TypeError, match="takes 7 arguments"):
        compiled({}, {})
    assert compiled({"f": 7}, {"f": _table(None)}, lambda ctx, name, value: value * 2, None, {}, 10, 10) == 14
