"""OASIS CACAO Security Playbooks v2.0: export our playbooks, import the constructs we support.

Mapping (ours -> CACAO ``workflow`` step types):

- main chain: ``start`` -> steps -> ``end``; ``next`` -> ``on_completion``;
  ``on_failure`` -> ``on_failure``; a branch ends where a step has no ``on_completion``.
- action step -> ``action`` step; the command is a ``manual`` command describing the call
  (for people and other tools), the exact call (action name, arguments, retries, timeout,
  backoff, foreach, on_timeout) is in the step extension ``citysoc-action``.  ``timeout``
  is also the CACAO step ``timeout`` (milliseconds).
- ``parallel`` -> ``parallel`` with ``next_steps``; condition -> ``if-condition``
  (``on_true``/``on_false``; the expression is ours, marked by the ``citysoc-condition``
  extension since CACAO's default condition language is STIX patterning).
- approval -> ``action`` step with a ``manual`` command and the ``citysoc-approval`` extension
  (CACAO has no approval construct).

Import accepts exactly that; anything else (``while-condition``, ``switch-condition``,
``playbook-action``, action steps whose commands we cannot run, STIX-pattern conditions)
is reported as a list of ``(JSON path, reason)`` -- never silently dropped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from playbooks.actions import ActionRegistry
from playbooks.model import ACTION, APPROVAL, CONDITION, PARALLEL, Playbook, PlaybookError, Step

SPEC_VERSION = "cacao-2.0"
_NS = uuid.UUID("6b0d6c0e-5a2f-4a4e-9a57-2f7f3c1c0a11")  # fixed namespace: exports are reproducible
EXT_ACTION = "citysoc-action"
EXT_APPROVAL = "citysoc-approval"
EXT_CONDITION = "citysoc-condition"
IDENTITY = "identity--" + str(uuid.uuid5(_NS, "CitySOC"))


class CacaoError(PlaybookError):
    """A CACAO document cannot be imported at all; the message says where."""


@dataclass(frozen=True)
class Unmapped:
    path: str
    reason: str


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, '/'.join(parts))}"


def _extension_definitions(playbook_id: str) -> dict[str, Any]:
    out = {}
    for name, text in (
        (EXT_ACTION, "CitySOC action call: registered action name and typed arguments."),
        (EXT_APPROVAL, "CitySOC human approval: roles, quorum of distinct approvers, deadline."),
        (EXT_CONDITION, "CitySOC condition: a sandboxed Jinja2 expression over the incident context."),
    ):
        out[_id("extension-definition", name)] = {
            "type": "extension-definition",
            "name": name,
            "description": text,
            "created_by": IDENTITY,
            "schema": f"https://citysoc.example/cacao/{name}.json",
            "version": "1.0.0",
        }
    return out


def export_cacao(playbook: Playbook, created: datetime | None = None) -> dict[str, Any]:
    """A CACAO 2.0 playbook (a JSON-ready dict) for ``playbook``."""
    at = (created or datetime(2026, 1, 1, tzinfo=timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    ids = {s.ref: _id(_cacao_type(s), playbook.id, s.ref) for s in playbook.steps}
    start, end = _id("start", playbook.id), _id("end", playbook.id)
    ext_ids = {name: _id("extension-definition", name) for name in (EXT_ACTION, EXT_APPROVAL, EXT_CONDITION)}
    main = _main_chain(playbook)
    workflow: dict[str, Any] = {start: {"type": "start", "on_completion": ids[playbook.entry.ref]}}
    for step in playbook.steps:
        following = playbook.chain_next.get(step.ref)
        body: dict[str, Any] = {"type": _cacao_type(step), "name": step.ref}
        if step.description:
            body["description"] = step.description
        if following:
            body["on_completion"] = ids[following]
        elif step.ref in main:
            body["on_completion"] = end
        if step.on_failure:
            body["on_failure"] = ids[step.on_failure]
        if step.kind == ACTION:
            body["commands"] = [{"type": "manual", "command": f"{step.action}({_describe(step.args)})"}]
            if step.timeout is not None:
                body["timeout"] = int(step.timeout * 1000)
            ext: dict[str, Any] = {"action": step.action, "args": dict(step.args), "ref": step.ref}
            for name in ("retries", "backoff", "foreach", "on_timeout"):
                value = getattr(step, name)
                if value not in (None, 0) and not (name == "backoff" and value == 1.0):
                    ext[name] = ids[value] if name == "on_timeout" else value
            body["step_extensions"] = {ext_ids[EXT_ACTION]: ext}
        elif step.kind == APPROVAL:
            assert step.approval is not None
            roles = ", ".join(step.approval.roles)
            body["commands"] = [
                {
                    "type": "manual",
                    "command": f"Approval by {step.approval.quorum} of: {roles}. {step.approval.description}",
                }
            ]
            if step.timeout is not None:
                body["timeout"] = int(step.timeout * 1000)
            approval: dict[str, Any] = {
                "ref": step.ref,
                "roles": list(step.approval.roles),
                "quorum": step.approval.quorum,
                "description": step.approval.description,
                "impact": step.approval.impact,
            }
            if step.on_timeout:
                approval["on_timeout"] = ids[step.on_timeout]
            body["step_extensions"] = {ext_ids[EXT_APPROVAL]: approval}
        elif step.kind == PARALLEL:
            body["next_steps"] = [ids[b] for b in step.branches]
        else:
            body["condition"] = step.condition
            body["on_true"] = ids[str(step.then)]
            if step.otherwise:
                body["on_false"] = ids[step.otherwise]
            body["step_extensions"] = {ext_ids[EXT_CONDITION]: {"ref": step.ref, "language": "jinja2-sandboxed"}}
        workflow[ids[step.ref]] = body
    workflow[end] = {"type": "end"}
    return {
        "type": "playbook",
        "spec_version": SPEC_VERSION,
        "id": _id("playbook", playbook.id),
        "name": playbook.name,
        "description": playbook.description or playbook.name,
        "playbook_types": ["mitigation"],
        "created_by": IDENTITY,
        "created": at,
        "modified": at,
        "revoked": False,
        "labels": [f"citysoc:{playbook.id}", f"citysoc-version:{playbook.version}"],
        "workflow_start": start,
        "workflow": workflow,
        "extension_definitions": _extension_definitions(playbook.id),
    }


def _main_chain(playbook: Playbook) -> set[str]:
    out, ref = set(), playbook.entry.ref
    while ref:
        out.add(ref)
        ref = playbook.chain_next.get(ref)  # type: ignore[assignment]
    return out


def _cacao_type(step: Step) -> str:
    return {ACTION: "action", APPROVAL: "action", PARALLEL: "parallel", CONDITION: "if-condition"}[step.kind]


def _describe(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


_SAFE_REF = re.compile(r"[^A-Za-z0-9_.-]+")


def import_cacao(
    document: Mapping[str, Any], registry: ActionRegistry, source: str = "<cacao>"
) -> tuple[Playbook | None, list[Unmapped]]:
    """Our playbook from a CACAO 2.0 document, and what did not map; None when nothing usable remains."""
    if document.get("type") != "playbook" or document.get("spec_version") != SPEC_VERSION:
        raise CacaoError(f"{source}: not a CACAO 2.0 playbook (type/spec_version must be playbook/{SPEC_VERSION})")
    workflow = document.get("workflow")
    start = document.get("workflow_start")
    if not isinstance(workflow, Mapping) or not isinstance(start, str) or start not in workflow:
        raise CacaoError(f"{source}: workflow_start must name a step of workflow")
    ext_names = {
        key: str(value.get("name"))
        for key, value in (document.get("extension_definitions") or {}).items()
        if isinstance(value, Mapping)
    }
    unmapped: list[Unmapped] = []
    refs: dict[str, str] = {}
    used: set[str] = set()
    for sid, body in workflow.items():
        if not isinstance(body, Mapping) or body.get("type") in ("start", "end"):
            continue
        ext = _extensions(body, ext_names)
        wanted = next((e["ref"] for e in ext.values() if isinstance(e, Mapping) and e.get("ref")), None)
        ref = _SAFE_REF.sub("-", str(wanted or body.get("name") or sid.split("--")[-1][:8])).strip("-")[:64] or "step"
        while ref in used:
            ref = f"{ref[:60]}-{len(used)}"
        used.add(ref)
        refs[sid] = ref
    first = workflow[start].get("on_completion") if isinstance(workflow[start], Mapping) else None
    steps: list[dict[str, Any]] = []
    order = _order(workflow, first)
    for sid in order:
        body = workflow[sid]
        path = f"workflow.{sid}"
        kind = body.get("type")
        ext = _extensions(body, ext_names)

        def target(key: str, body: Mapping[str, Any] = body, path: str = path) -> str | None:
            value = body.get(key)
            if value is None or (isinstance(workflow.get(value), Mapping) and workflow[value].get("type") == "end"):
                return None
            if value not in refs:
                unmapped.append(Unmapped(f"{path}.{key}", f"points to {value!r}, which is not an importable step"))
                return None
            return refs[value]

        step: dict[str, Any] = {"ref": refs[sid]}
        if body.get("description"):
            step["description"] = str(body["description"])
        nxt = target("on_completion")
        step["next"] = nxt or "end"
        if target("on_failure"):
            step["on_failure"] = target("on_failure")
        if kind == "action" and EXT_ACTION in ext:
            call = ext[EXT_ACTION]
            step["action"] = call.get("action")
            step["args"] = dict(call.get("args") or {})
            for name in ("retries", "backoff", "foreach"):
                if name in call:
                    step[name] = call[name]
            if call.get("on_timeout"):
                step["on_timeout"] = refs.get(call["on_timeout"])
            if body.get("timeout"):
                step["timeout"] = int(body["timeout"]) / 1000
        elif kind == "action" and EXT_APPROVAL in ext:
            spec = ext[EXT_APPROVAL]
            step["approval"] = {k: spec[k] for k in ("roles", "quorum", "description", "impact") if k in spec}
            if spec.get("on_timeout"):
                step["on_timeout"] = refs.get(spec["on_timeout"])
            if body.get("timeout"):
                step["timeout"] = int(body["timeout"]) / 1000
        elif kind == "parallel":
            branches = [refs[b] for b in body.get("next_steps", []) if b in refs]
            step["parallel"] = branches
        elif kind == "if-condition" and EXT_CONDITION in ext:
            step["if"] = body.get("condition")
            step["then"] = target("on_true")
            if target("on_false"):
                step["else"] = target("on_false")
        else:
            reason = {
                "action": "action commands of type "
                + ", ".join(sorted({str(c.get("type")) for c in body.get("commands", []) if isinstance(c, Mapping)}))
                + " cannot run here (no citysoc-action extension); map it to a registered action",
                "if-condition": "the condition is not a CitySOC expression (STIX patterning is not evaluated)",
                "while-condition": "loops other than foreach over an entity field are not supported",
                "switch-condition": "switch conditions are not supported; use if-condition steps",
                "playbook-action": "calling another playbook is not supported",
            }.get(str(kind), f"step type {kind!r} is not supported")
            unmapped.append(Unmapped(path, reason))
            continue
        steps.append(step)
    kept = {s["ref"] for s in steps}
    for s in steps:  # links to dropped steps end the chain there (and were reported)
        for key in ("next", "on_failure", "on_timeout", "then", "else"):
            if s.get(key) not in (None, "end") and s[key] not in kept:
                if key == "next":
                    s["next"] = "end"
                else:
                    del s[key]
        if "parallel" in s:
            s["parallel"] = [b for b in s["parallel"] if b in kept]
    steps = _reachable(steps, {ref: sid for sid, ref in refs.items()}, unmapped)
    if not steps:
        return None, unmapped
    labels = [str(x) for x in document.get("labels", [])]
    pid = (
        next((x.split(":", 1)[1] for x in labels if x.startswith("citysoc:")), None)
        or _SAFE_REF.sub("-", str(document.get("name") or document["id"])).strip("-").lower()
    )
    version = next((x.split(":", 1)[1] for x in labels if x.startswith("citysoc-version:")), "1")
    data = {"id": pid, "name": document.get("name", pid), "version": version, "steps": steps}
    if document.get("description") and document.get("description") != document.get("name"):
        data["description"] = document["description"]
    return Playbook.from_dict(data, registry, source=source), unmapped


def _extensions(body: Mapping[str, Any], ext_names: Mapping[str, str]) -> dict[str, Any]:
    raw = body.get("step_extensions") or {}
    return {ext_names.get(k, k): v for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _order(workflow: Mapping[str, Any], first: Any) -> list[str]:
    """Steps in the order they are reached (depth first along each chain), then any unreached ones."""
    seen: list[str] = []
    todo = [first] if first else []
    while todo:
        sid = todo.pop(0)
        chain: list[str] = []
        while isinstance(sid, str) and sid in workflow and sid not in seen and sid not in chain:
            body = workflow[sid]
            if not isinstance(body, Mapping) or body.get("type") in ("start", "end"):
                break
            chain.append(sid)
            for key in ("next_steps",):
                todo.extend(body.get(key, []))
            for key in ("on_true", "on_false", "on_failure"):
                if body.get(key):
                    todo.append(body[key])
            for ext in (body.get("step_extensions") or {}).values():
                if isinstance(ext, Mapping) and ext.get("on_timeout"):
                    todo.append(ext["on_timeout"])
            sid = body.get("on_completion")
        seen.extend(chain)
    rest = [
        sid
        for sid, b in workflow.items()
        if sid not in seen and isinstance(b, Mapping) and b.get("type") not in ("start", "end")
    ]
    return seen + rest


def _reachable(steps: list[dict[str, Any]], sids: Mapping[str, str], unmapped: list[Unmapped]) -> list[dict[str, Any]]:
    """Drop (and report) steps that were reachable only through a step that did not map."""
    by_ref = {s["ref"]: s for s in steps}
    reached: set[str] = set()
    todo = [steps[0]["ref"]] if steps else []
    while todo:
        ref = todo.pop()
        if ref in reached or ref not in by_ref:
            continue
        reached.add(ref)
        step = by_ref[ref]
        todo.extend(step.get("parallel", []))
        todo.extend(str(step[k]) for k in ("next", "on_failure", "on_timeout", "then", "else") if step.get(k))
    for step in steps:
        if step["ref"] not in reached:
            unmapped.append(Unmapped(f"workflow.{sids[step['ref']]}", "reachable only through a step that did not map"))
    return [s for s in steps if s["ref"] in reached]
