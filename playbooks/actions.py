"""Playbook actions: typed functions, argument schema from the signature, one registration each.

An action is ``def name(ctx: ActionContext, arg: type = default, ...) -> dict``
decorated with :func:`action`, which records its impact tier.  Arguments come
from the playbook step after sandboxed templating and are checked against the
signature before the action runs; template output is always a plain string,
handed to the action as data -- never to a shell.
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import ipaddress
import json
import os
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from store.base import Store
from store.event import format_ts
from store.models import IncidentStatus


class ActionError(Exception):
    """An action failed or was called wrongly; the message says which and why."""


class Impact(enum.Enum):
    """Safety tier of an action."""

    READ = "read"  # reads data only
    NOTIFY = "notify"  # tells people or systems
    CONTAIN = "contain"  # changes IT controls (block lists, accounts)
    OT_WRITE = "ot_write"  # writes to PLCs/RTUs or cuts a public service: approval + dry-run always


@dataclass(frozen=True)
class ActionContext:
    store: Store
    run_id: str
    incident_id: str | None
    home: Path
    drill: bool = False
    actor: str = "playbooks"


@dataclass(frozen=True)
class ActionSpec:
    name: str
    func: Callable[..., Any]
    impact: Impact
    description: str

    @property
    def parameters(self) -> dict[str, tuple[type, Any]]:
        """name -> (type, default or inspect.Parameter.empty), excluding ctx."""
        hints = get_type_hints(self.func)
        out = {}
        for pname, param in list(inspect.signature(self.func).parameters.items())[1:]:
            out[pname] = (hints.get(pname, str), param.default)
        return out

    def check_args(self, args: Mapping[str, Any]) -> None:
        params = self.parameters
        unknown = set(args) - set(params)
        if unknown:
            raise ActionError(f"action {self.name!r} has no argument(s) {', '.join(sorted(unknown))}")
        missing = [p for p, (_, default) in params.items() if default is inspect.Parameter.empty and p not in args]
        if missing:
            raise ActionError(f"action {self.name!r} needs argument(s) {', '.join(missing)}")

    def coerce(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Convert rendered arguments to the declared types."""
        self.check_args(args)
        out: dict[str, Any] = {}
        for pname, value in args.items():
            ptype = self.parameters[pname][0]
            try:
                if ptype is bool and isinstance(value, str):
                    if value.lower() not in ("true", "false"):
                        raise ValueError(f"{value!r} is not true/false")
                    out[pname] = value.lower() == "true"
                elif ptype in (int, float, str) and not isinstance(value, ptype):
                    out[pname] = ptype(value)
                else:
                    out[pname] = value
            except (TypeError, ValueError) as exc:
                raise ActionError(f"action {self.name!r}: argument {pname!r}: {exc}") from exc
        return out

    def schema(self) -> dict[str, Any]:
        props = {}
        for pname, (ptype, default) in self.parameters.items():
            props[pname] = {"type": getattr(ptype, "__name__", str(ptype))}
            if default is not inspect.Parameter.empty:
                props[pname]["default"] = default
        return {"name": self.name, "impact": self.impact.value, "description": self.description, "arguments": props}


class ActionRegistry:
    def __init__(self) -> None:
        self._actions: dict[str, ActionSpec] = {}

    def register(self, spec: ActionSpec) -> None:
        if spec.name in self._actions:
            raise ActionError(f"action {spec.name!r} is registered twice")
        self._actions[spec.name] = spec

    def get(self, name: str) -> ActionSpec:
        try:
            return self._actions[name]
        except KeyError:
            raise ActionError(f"unknown action {name!r} (known: {', '.join(sorted(self._actions))})") from None

    def names(self) -> list[str]:
        return sorted(self._actions)

    @property
    def version(self) -> str:
        """Recorded on each run, so a run says which actions it ran with."""
        text = json.dumps([self._actions[n].schema() for n in self.names()], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


REGISTRY = ActionRegistry()


def action(name: str, impact: Impact) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY.register(ActionSpec(name, func, impact, inspect.getdoc(func) or ""))
        return func

    return register


# templating ----------------------------------------------------------------------
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def render_args(args: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Render string arguments containing ``{{ }}`` in the sandbox; other values pass unchanged.

    The template text comes from the playbook author; event content only ever
    appears in the *context*, so it is substituted as data and never parsed as
    a template itself.
    """
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            try:
                out[key] = _ENV.from_string(value).render(**context)
            except TemplateError as exc:
                raise ActionError(f"argument {key!r}: template error: {exc}") from exc
        else:
            out[key] = value
    return out


# built-in actions ------------------------------------------------------------------
@action("collect_evidence", Impact.READ)
def collect_evidence(ctx: ActionContext, limit: int = 500) -> dict[str, Any]:
    """Snapshot the events behind the incident's alerts onto its timeline."""
    if ctx.incident_id is None:
        raise ActionError("collect_evidence needs an incident")
    alerts = ctx.store.list_alerts(incident_id=ctx.incident_id)
    event_ids = [eid for alert in alerts for eid in alert.event_ids][:limit]
    events = ctx.store.get_events(event_ids)
    summary = {
        "events": len(events),
        "first": format_ts(events[0].timestamp) if events else None,
        "last": format_ts(events[-1].timestamp) if events else None,
        "event_ids": [e.id for e in events],
        "datasets": sorted({str(e.get("event.dataset")) for e in events}),
    }
    ctx.store.append_timeline(ctx.incident_id, "evidence", ctx.actor, summary)
    return {"events": len(events), "datasets": summary["datasets"]}


@action("block_ip", Impact.CONTAIN)
def block_ip(ctx: ActionContext, ip: str, reason: str = "", blocklist: str = "ip-blocklist") -> dict[str, Any]:
    """Add an address to a managed block-list file that firewalls consume (one address per line)."""
    try:
        address = str(ipaddress.ip_address(ip.strip()))
    except ValueError as exc:
        raise ActionError(f"block_ip: {ip!r} is not an IP address") from exc
    if not blocklist.replace("-", "").replace("_", "").isalnum():
        raise ActionError(f"block_ip: block-list name {blocklist!r} must be letters, digits, - or _")
    path = ctx.home / "blocklists" / f"{blocklist}.txt"
    if ctx.drill:
        return {"blocked": address, "file": str(path), "simulated": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    present = path.exists() and address in {line.split("#", 1)[0].strip() for line in path.read_text().splitlines()}
    if not present:
        note = " ".join(reason.split())[:200]
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"{address}  # {ctx.incident_id or ''} {note}\n")
            fh.flush()
            os.fsync(fh.fileno())
    return {"blocked": address, "file": str(path), "already_listed": present}


@action("set_status", Impact.READ)
def set_status(ctx: ActionContext, status: str, reason: str = "") -> dict[str, Any]:
    """Move the incident to a new status (new, triage, in_progress, contained, closed)."""
    if ctx.incident_id is None:
        raise ActionError("set_status needs an incident")
    try:
        value = IncidentStatus(status).value
    except ValueError as exc:
        raise ActionError(f"set_status: unknown status {status!r}") from exc
    ctx.store.append_timeline(ctx.incident_id, "status", ctx.actor, {"value": value, "reason": reason})
    return {"status": value}


@action("add_comment", Impact.READ)
def add_comment(ctx: ActionContext, text: str) -> dict[str, Any]:
    """Write a comment on the incident timeline."""
    if ctx.incident_id is None:
        raise ActionError("add_comment needs an incident")
    ctx.store.append_timeline(ctx.incident_id, "comment", ctx.actor, {"text": text})
    return {"commented": True}


@action("notify_webhook", Impact.NOTIFY)
def notify_webhook(ctx: ActionContext, url: str, message: str, timeout: float = 10.0) -> dict[str, Any]:
    """POST a JSON notification ``{"incident_id", "run_id", "message"}`` to an HTTP(S) webhook."""
    if not url.startswith(("http://", "https://")):
        raise ActionError(f"notify_webhook: only http(s) URLs are allowed, got {url!r}")
    body = json.dumps({"incident_id": ctx.incident_id, "run_id": ctx.run_id, "message": message}).encode()
    if ctx.drill:
        return {"url": url, "simulated": True}
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return {"url": url, "status": response.status}
    except OSError as exc:
        raise ActionError(f"notify_webhook: {url}: {exc}") from exc
