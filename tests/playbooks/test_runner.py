"""The runner on a real store, without Celery: claims, redelivery, races, audit, templating as data."""

from __future__ import annotations

import inspect
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from playbooks.actions import REGISTRY, ActionContext, ActionRegistry, ActionSpec, Impact
from playbooks.model import Playbook, PlaybookLibrary, default_library_path
from playbooks.runner import Runner, new_run, redact
from store.models import Alert, Incident, IncidentStatus, RunStatus, Severity, StepStatus
from store.sqlite import SQLiteStore
from tests.helpers import T0, event

HOSTILE = "{{ 7*7 }}$(touch /tmp/pwned-citysoc);`id`|rm -rf / {{ ''.__class__ }} <script>x</script> {% raw %}"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "db")
    s.put_events([event(0, {"source.ip": "10.20.5.66", "user.name": HOSTILE, "message": HOSTILE}, "e1")])
    s.create_incident(
        Incident(
            "INC-1", "Brute force", Severity.HIGH, IncidentStatus.NEW, T0, T0, T0, T0, "source.ip=10.20.5.66",
            entities={"source.ip": ("10.20.5.66",), "user.name": (HOSTILE,)},
        ),
        actor="test",
    )  # fmt: skip
    alert = Alert("A1", "r1", HOSTILE, Severity.HIGH, T0, T0, ("e1",), {"source.ip": "10.20.5.66"}, ("attack.t1110",))
    s.add_alert(alert)
    s.attach_alert("INC-1", alert, actor="test")
    return s


class Inline:
    """Runs queued step attempts in this process, in order (what the workers do)."""

    def __init__(self, store: SQLiteStore, library: PlaybookLibrary, registry: ActionRegistry, home: Path) -> None:
        self.queue: deque[tuple[str, str, int]] = deque()
        self.sent: list[tuple[str, int]] = []
        self.runner = Runner(store, library, registry, home, send=self.send)

    def send(self, run_id: str, key: str, attempt: int, idempotent: bool) -> None:
        self.queue.append((run_id, key, attempt))
        self.sent.append((key, attempt))

    def run(self, run_id: str) -> None:
        self.runner.drive(run_id)
        while self.queue:
            self.runner.execute(*self.queue.popleft())


def test_library_playbook_runs_once_and_a_redelivered_step_is_not_repeated(store: SQLiteStore, tmp_path: Path) -> None:
    library = PlaybookLibrary.load([default_library_path()], REGISTRY)
    pb = library.get("camera-compromise-ot-pivot")
    run = new_run(store, pb, "INC-1", REGISTRY)
    inline = Inline(store, library, REGISTRY, tmp_path)
    inline.run(run.id)
    done = store.get_run(run.id)
    assert done.status is RunStatus.SUCCEEDED
    steps = {s.ref: s for s in done.steps}
    assert steps["block-source"].inputs["ip"] == "10.20.5.66" and steps["escalate"].status is StepStatus.PENDING
    blocklist = next((tmp_path / "blocklists").glob("*.txt"))
    assert blocklist.read_text().count("10.20.5.66") == 1
    for key, attempt in inline.sent:  # every message delivered a second time
        inline.runner.execute(run.id, key, attempt)
    assert blocklist.read_text().count("10.20.5.66") == 1
    assert store.get_run(run.id).steps == done.steps
    assert store.get_incident("INC-1").status is IncidentStatus.CONTAINED
    assert store.verify_audit() > 0


def test_racing_drivers_queue_each_step_once(store: SQLiteStore, tmp_path: Path) -> None:
    pb = Playbook.from_dict(
        {"id": "pb", "steps": [{"ref": "a", "action": "add_comment", "args": {"text": "x"}}]}, REGISTRY
    )
    library = PlaybookLibrary([pb])
    run = new_run(store, pb, "INC-1", REGISTRY)
    one, two = Inline(store, library, REGISTRY, tmp_path), Inline(store, library, REGISTRY, tmp_path)
    one.runner.drive(run.id)
    two.runner.drive(run.id)
    assert one.sent + two.sent == [("a", 1)]


def _probe_registry(calls: list[dict[str, Any]]) -> ActionRegistry:
    def probe(ctx: ActionContext, text: str, api_token: str = "") -> dict[str, Any]:
        calls.append({"text": text, "key": ctx.idempotency_key})
        return {"echo": text, "token": api_token}

    reg = ActionRegistry()
    reg.register(ActionSpec("probe", probe, Impact.NOTIFY, ""))
    return reg


def test_audit_has_inputs_outputs_and_never_secrets(store: SQLiteStore, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    reg = _probe_registry(calls)
    pb = Playbook.from_dict(
        {"id": "pb", "steps": [{"ref": "p", "action": "probe", "args": {"text": "hi", "api_token": "s3cr3t-value"}}]},
        reg,
    )
    run = new_run(store, pb, "INC-1", reg)
    Inline(store, PlaybookLibrary([pb]), reg, tmp_path).run(run.id)
    assert calls == [{"text": "hi", "key": f"{run.id}/p"}]
    entries = [e for e in store.audit_entries() if e.object.startswith(run.id)]
    actions = [e.action for e in reversed(entries)]
    assert actions == ["run.created", "step.queued", "step.started", "step.succeeded", "run.succeeded"]
    started = next(e for e in entries if e.action == "step.started")
    assert started.details["inputs"] == {"text": "hi", "api_token": "***"}
    assert "s3cr3t-value" not in repr([e.details for e in store.audit_entries()])
    assert "s3cr3t-value" not in repr(store.get_run(run.id))
    assert store.verify_audit() == len(store.audit_entries(limit=10_000))


def _sample(ptype: type) -> Any:
    return {int: 1, float: 1.0, bool: False}.get(ptype, "")


def test_hostile_event_content_reaches_every_action_as_inert_data(store: SQLiteStore, tmp_path: Path) -> None:
    """Each string argument of each registered action is templated from a hostile event field."""
    checked = 0
    for name in REGISTRY.names():
        spec = REGISTRY.get(name)
        # secret-named arguments are redacted in records, so they are left at their defaults here
        strings = [p for p, (t, _) in spec.parameters.items() if t is str and redact({p: 1})[p] != "***"]
        if not strings:
            continue
        args = {p: "{{ event['user.name'] }}" for p in strings}
        args |= {
            p: _sample(t) for p, (t, d) in spec.parameters.items() if p not in args and d is inspect.Parameter.empty
        }
        steps: list[dict[str, Any]] = [{"ref": "s", "action": name, "args": args}]
        if spec.impact.needs_approval:
            steps.insert(0, {"ref": "ok", "approval": {"roles": ["responder"]}})
        pb = Playbook.from_dict({"id": f"pb-{name}", "steps": steps}, REGISTRY)
        run = new_run(store, pb, "INC-1", REGISTRY, drill=True)
        inline = Inline(store, PlaybookLibrary([pb]), REGISTRY, tmp_path)
        if spec.impact.needs_approval:
            from playbooks.approvals import decide

            inline.runner.drive(run.id)
            decide(store, run.id, "ok", "ann", ["responder"], True, "test")
        inline.run(run.id)
        rec = next(r for r in store.get_run(run.id).steps if r.ref == "s")
        assert rec.attempt >= 1, f"{name} never ran"
        # rendered exactly once: the event text is an argument value, never a template, never a command
        assert {p: rec.inputs.get(p) for p in strings} == {p: HOSTILE for p in strings}, name
        checked += 1
    assert checked >= 3
    assert not Path("/tmp/pwned-citysoc").exists()
