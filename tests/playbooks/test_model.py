from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playbooks.actions import REGISTRY
from playbooks.model import Playbook, PlaybookError, PlaybookLibrary, default_library_path
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
