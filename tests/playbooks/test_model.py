from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from playbooks.actions import REGISTRY, ActionContext, ActionRegistry, ActionSpec, Impact
from playbooks.model import Playbook, PlaybookError, PlaybookErrors, PlaybookLibrary, Trigger, default_library_path
from store.models import Alert, Incident, IncidentStatus, Severity
from tests.helpers import T0


def _pb(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": "pb", "name": "PB", "trigger": {"tags": ["attack.t1110"]}, "steps": steps, **extra}


def test_library_playbooks_validate() -> None:
    library = PlaybookLibrary.load([default_library_path()], REGISTRY)
    assert len(library) >= 1
    pb = library.get("camera-compromise-ot-pivot")
    assert [s.ref for s in pb.steps] == ["evidence", "block-source", "contained", "escalate"]
    assert pb.successor(pb.step("block-source"), failed=True).ref == "escalate"  # type: ignore[union-attr]
    assert pb.successor(pb.step("block-source"), failed=False).ref == "contained"  # type: ignore[union-attr]
    assert pb.successor(pb.step("contained"), failed=False) is None


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [
                {"ref": "a", "action": "add_comment", "args": {"text": "x"}},
                {"ref": "a", "action": "add_comment", "args": {"text": "y"}},
            ],
            "used twice",
        ),
        ([{"ref": "a", "action": "nope"}], "unknown action 'nope'"),
        ([{"ref": "a", "action": "add_comment"}], "needs argument"),
        ([{"ref": "a", "action": "add_comment", "args": {"text": "x", "bogus": 1}}], "no argument"),
        ([{"ref": "a", "action": "add_comment", "args": {"text": "x"}, "next": "zz"}], "'zz' is not a step"),
        (
            [
                {"ref": "a", "action": "add_comment", "args": {"text": "x"}, "next": "b"},
                {"ref": "b", "action": "add_comment", "args": {"text": "x"}, "next": "c"},
                {"ref": "c", "action": "add_comment", "args": {"text": "x"}, "next": "b"},
            ],
            "cycle",
        ),
        (
            [
                {"ref": "a", "action": "add_comment", "args": {"text": "x"}, "next": "end"},
                {"ref": "b", "action": "add_comment", "args": {"text": "x"}},
            ],
            "not reachable",
        ),
        (
            [
                {"ref": "a", "action": "add_comment", "args": {"text": "x"}},
                {"ref": "b", "action": "add_comment", "args": {"text": "x"}, "next": "a"},
            ],
            "entry step",
        ),
        ([], "non-empty list"),
    ],
)
def test_invalid_playbooks_are_refused_with_reason(steps: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(PlaybookError, match=message):
        Playbook.from_dict(_pb(steps), REGISTRY, source="test.yml")


def test_library_reports_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("id: x\nsteps: [{ref: a, action: nope}]\n")
    with pytest.raises(PlaybookError, match=r"bad\.yml"):
        PlaybookLibrary.load([tmp_path], REGISTRY)


def test_trigger_matches_tags_with_subtechniques_and_severity() -> None:
    pb = Playbook.from_dict(
        _pb(
            [{"ref": "a", "action": "add_comment", "args": {"text": "x"}}],
            trigger={"tags": ["attack.t1110"], "min_severity": "high"},
        ),
        REGISTRY,
    )
    inc = Incident("I", "t", Severity.HIGH, IncidentStatus.NEW, T0, T0, T0, T0, "k")
    alert = Alert("A", "r", "R", Severity.HIGH, T0, T0, ("e",), {}, ("attack.t1110.001",))
    assert pb.trigger.matches(inc, alert)
    assert not pb.trigger.matches(inc, Alert("A", "r", "R", Severity.HIGH, T0, T0, ("e",), {}, ("attack.t1078",)))
    low = Incident("I", "t", Severity.MEDIUM, IncidentStatus.NEW, T0, T0, T0, T0, "k")
    assert not pb.trigger.matches(low, alert)


def _with_valve(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "pb", "steps": steps}


def _say(ctx: ActionContext, text: str = "", n: int = 1, flag: bool = False) -> dict[str, Any]:
    return {}


def _valve(ctx: ActionContext, setpoint: float = 0) -> dict[str, Any]:
    return {}


@pytest.fixture
def registry() -> ActionRegistry:
    reg = ActionRegistry()
    reg.register(ActionSpec("say", _say, Impact.NOTIFY, ""))
    reg.register(ActionSpec("open_valve", _valve, Impact.OT_WRITE, ""))
    reg.register(ActionSpec("cut_power", _valve, Impact.PUBLIC_SERVICE_CUT, ""))
    return reg


@pytest.mark.parametrize("action", ["open_valve", "cut_power"])
def test_ot_write_and_service_cuts_need_an_approval_before_them(registry: ActionRegistry, action: str) -> None:
    with pytest.raises(PlaybookError, match="must be preceded by an approval step"):
        Playbook.from_dict(_with_valve([{"ref": "a", "action": "say"}, {"ref": "w", "action": action}]), registry)
    # an approval on one branch only does not guard the other
    with pytest.raises(PlaybookError, match=r"'w'.*must be preceded"):
        Playbook.from_dict(
            _with_valve(
                [
                    {"ref": "c", "if": "true", "then": "ok", "else": "w"},
                    {"ref": "ok", "approval": {"roles": ["responder"]}},
                    {"ref": "w", "action": action},
                ]
            ),
            registry,
        )
    # the approval's own timeout escalation is not guarded by it
    with pytest.raises(PlaybookError, match="must be preceded"):
        Playbook.from_dict(
            _with_valve(
                [{"ref": "ok", "approval": {"roles": ["r"]}, "on_timeout": "w"}, {"ref": "w", "action": action}]
            ),
            registry,
        )
    pb = Playbook.from_dict(
        _with_valve([{"ref": "ok", "approval": {"roles": ["engineer"], "quorum": 2}}, {"ref": "w", "action": action}]),
        registry,
    )
    assert pb.guards["w"] == ("ok",)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"ref": "a", "action": "say", "args": {"n": "many"}}, "'n' must be a int"),
        ({"ref": "a", "action": "say", "args": {"flag": "perhaps"}}, "true or false"),
        ({"ref": "a", "action": "say", "args": {"text": {"x": 1}}}, "must be a string"),
        ({"ref": "a", "action": "say", "timeout": "soon"}, "not a duration"),
        ({"ref": "a", "action": "say", "bogus": 1}, "unknown key"),
        ({"ref": "a", "action": "say", "parallel": ["x", "y"]}, "exactly one of"),
        ({"ref": "a", "approval": {"roles": []}}, "at least one role"),
        ({"ref": "a", "approval": {"roles": ["r"], "quorum": 0}}, "quorum"),
        ({"ref": "a", "if": "incident.severity ==", "then": "a"}, "not a valid expression"),
        ({"ref": "a b", "action": "say"}, "ref must be"),
        ({"ref": "a", "action": "say", "foreach": ["x"]}, "foreach"),
    ],
)
def test_step_errors_name_the_file_line_and_step(registry: ActionRegistry, step: dict[str, Any], message: str) -> None:
    with pytest.raises(PlaybookError, match=message) as info:
        Playbook.from_dict(_with_valve([step]), registry, source="x.yml")
    assert "x.yml" in str(info.value)


def test_a_step_reached_from_two_branches_is_refused(registry: ActionRegistry) -> None:
    steps = [
        {"ref": "fan", "parallel": ["a", "b"]},
        {"ref": "a", "action": "say", "next": "c"},
        {"ref": "b", "action": "say", "next": "c"},
        {"ref": "c", "action": "say"},
    ]
    with pytest.raises(PlaybookError, match="reached from two places"):
        Playbook.from_dict(_with_valve(steps), registry)


def test_chains_branches_end_and_the_main_chain_skips_them(registry: ActionRegistry) -> None:
    pb = Playbook.from_dict(
        _with_valve(
            [
                {"ref": "fan", "parallel": ["a", "b"]},
                {"ref": "a", "action": "say", "next": "a2"},
                {"ref": "a2", "action": "say"},
                {"ref": "b", "action": "say", "on_failure": "undo"},
                {"ref": "after", "action": "say"},
                {"ref": "undo", "action": "say"},
            ]
        ),
        registry,
    )
    assert dict(pb.chain_next) == {"fan": "after", "a": "a2", "a2": None, "b": None, "after": None, "undo": None}


def test_library_errors_are_collected_with_file_and_line(tmp_path: Path, registry: ActionRegistry) -> None:
    (tmp_path / "one.yml").write_text("id: one\nsteps:\n  - ref: a\n    action: nope\n")
    (tmp_path / "two.yml").write_text("id: two\nsteps:\n  - ref: a\n    action: say\n  - ref: a\n    action: say\n")
    with pytest.raises(PlaybookErrors) as info:
        PlaybookLibrary.load([tmp_path], registry, collect=True)
    messages = [str(e) for e in info.value.errors]
    assert len(messages) == 2
    assert any("one.yml:3: step 'a'" in m and "unknown action" in m for m in messages)
    assert any("two.yml:5: step 'a'" in m and "used twice" in m for m in messages)


def test_triggers_on_sector_agency_security_level_and_thresholds(tmp_path: Path) -> None:
    from store.sqlite import SQLiteStore
    from tests.helpers import event

    trig = Trigger.from_dict(
        {
            "sectors": ["water"],
            "agencies": ["Hanoi Water Company"],
            "min_security_level": 4,
            "threshold": {"count": 3, "window": "5m", "field": "ot.tag.value", "above": 90},
        },
        "t.yml",
    )
    entities = {"asset.sector": ("water",), "asset.agency": ("Hanoi Water Company",), "asset.security_level": ("4",)}
    inc = Incident("I", "t", Severity.HIGH, IncidentStatus.NEW, T0, T0, T0, T0, "k", entities=entities)
    store = SQLiteStore(tmp_path / "db")
    store.put_events([event(i * 60, {"ot.tag.value": v}, f"e{i}") for i, v in enumerate([95, 99, 50, 91])])
    alert = Alert("A", "r", "R", Severity.HIGH, T0, T0 + timedelta(minutes=3), ("e0", "e1", "e2", "e3"), {}, ())
    assert trig.matches(inc, alert, store)  # 95, 99, 91 over 90 within 5 minutes
    assert not trig.matches(inc, replace(alert, event_ids=("e0", "e2", "e3")), store)
    assert not trig.matches(replace(inc, entities={**entities, "asset.security_level": ("3",)}), alert, store)
    assert not trig.matches(replace(inc, entities={**entities, "asset.sector": ("traffic",)}), alert, store)
    counting = Trigger.from_dict({"threshold": {"count": 2, "window": 60}}, "t.yml")
    assert not counting.matches(inc, alert, store)  # one alert only
    with pytest.raises(PlaybookError, match="'field' and 'above' go together"):
        Trigger.from_dict({"threshold": {"count": 1, "window": 1, "field": "x"}}, "t.yml")
    store.close()
