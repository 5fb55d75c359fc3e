"""CACAO 2.0 export and import: the library round-trips; what does not map is reported with its path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from playbooks.actions import REGISTRY
from playbooks.cacao import SPEC_VERSION, CacaoError, export_cacao, import_cacao
from playbooks.model import Playbook, PlaybookLibrary, default_library_path

RICH = Playbook.from_dict(
    {
        "id": "rich",
        "name": "Every construct",
        "version": "2",
        "steps": [
            {"ref": "evidence", "action": "collect_evidence", "timeout": "30s", "retries": 2, "backoff": 3},
            {"ref": "fan", "parallel": ["note", "hot"]},
            {"ref": "note", "action": "add_comment", "args": {"text": "{{ incident.id }}"}, "next": "note2"},
            {"ref": "note2", "action": "add_comment", "args": {"text": "second"}},
            {"ref": "hot", "if": "incident.severity == 'critical'", "then": "ask", "else": "cold"},
            {"ref": "ask", "approval": {"roles": ["responder"], "quorum": 2, "description": "d", "impact": "i"},
             "timeout": "10m", "on_timeout": "late"},
            {"ref": "cold", "action": "add_comment", "args": {"text": "not critical"}},
            {"ref": "late", "action": "add_comment", "args": {"text": "nobody decided"}},
            {"ref": "contain", "action": "add_comment", "args": {"text": "x"}, "on_failure": "undo"},
            {"ref": "undo", "action": "add_comment", "args": {"text": "undo"}},
        ],
    },
    REGISTRY,
)  # fmt: skip


def _shape(pb: Playbook) -> dict[str, Any]:
    """What a playbook does, independent of how its YAML spelled the chains."""
    return {
        s.ref: (
            s.kind, s.action, dict(s.args), s.retries, s.backoff, s.timeout, s.foreach, s.branches, s.condition,
            s.then, s.otherwise, s.approval, s.on_failure, s.on_timeout, pb.chain_next.get(s.ref),
        )
        for s in pb.steps
    }  # fmt: skip


@pytest.mark.parametrize("pb", [RICH, *PlaybookLibrary.load([default_library_path()], REGISTRY)], ids=lambda p: p.id)
def test_round_trip(pb: Playbook) -> None:
    doc = json.loads(json.dumps(export_cacao(pb)))
    assert doc["spec_version"] == SPEC_VERSION and doc["workflow_start"] in doc["workflow"]
    types = {step["type"] for step in doc["workflow"].values()}
    assert {"start", "end", "action"} <= types
    back, unmapped = import_cacao(doc, REGISTRY)
    assert unmapped == [] and back is not None
    assert (back.id, back.name, back.version) == (pb.id, pb.name, pb.version)
    assert _shape(back) == _shape(pb)
    assert export_cacao(back) == export_cacao(pb)  # stable ids: the same playbook exports the same document


def test_export_uses_cacao_step_types() -> None:
    workflow = export_cacao(RICH)["workflow"]
    by_name = {s.get("name"): s for s in workflow.values()}
    assert by_name["fan"]["type"] == "parallel" and len(by_name["fan"]["next_steps"]) == 2
    assert by_name["hot"]["type"] == "if-condition" and {"on_true", "on_false"} <= set(by_name["hot"])
    assert by_name["evidence"]["timeout"] == 30_000 and by_name["evidence"]["commands"][0]["type"] == "manual"
    assert by_name["contain"]["on_failure"] == next(k for k, v in workflow.items() if v.get("name") == "undo")


def test_unsupported_constructs_are_reported_with_their_path() -> None:
    doc = export_cacao(RICH)
    workflow = doc["workflow"]
    cold = next(k for k, v in workflow.items() if v.get("name") == "cold")
    workflow[cold] = {"type": "action", "name": "cold", "commands": [{"type": "bash", "command": "rm -rf /"}]}
    loop = "while-condition--00000000-0000-4000-8000-000000000001"
    undo = next(k for k, v in workflow.items() if v.get("name") == "undo")
    workflow[loop] = {"type": "while-condition", "condition": "[x:y = 1]", "on_true": undo}
    contain = next(k for k, v in workflow.items() if v.get("name") == "contain")
    workflow[contain]["on_failure"] = loop
    back, unmapped = import_cacao(doc, REGISTRY)
    reasons = {u.path: u.reason for u in unmapped}
    assert "bash cannot run here" in reasons[f"workflow.{cold}"]
    assert "loops" in reasons[f"workflow.{loop}"]
    assert "only through a step that did not map" in reasons[f"workflow.{undo}"]
    assert back is not None and back.step("hot").otherwise is None and back.step("contain").on_failure is None


def test_not_a_cacao_document() -> None:
    with pytest.raises(CacaoError, match=r"not a CACAO 2\.0 playbook"):
        import_cacao({"type": "playbook", "spec_version": "cacao-1.1"}, REGISTRY, source="x.json")
