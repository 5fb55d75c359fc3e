"""The action registry: typed functions, argument schema from the signature, one registration each.

An action is ``def name(ctx: ActionContext, arg: type = default, ...) -> dict``
decorated with :func:`action`, which declares its impact tier, whether it is
idempotent, and registers it once (a second registration of a name is an
error).  Arguments come from the playbook step after sandboxed templating and
are checked against the signature before the action runs; template output
(:mod:`playbooks.templating`) is always a plain string, handed to the action as
data -- never to a shell.

Every action honours ``ctx.drill``: it validates its arguments and builds the
request it would send, then returns that plan marked ``"simulated": True``
without any side effect.  The registered callable also derives the step's
idempotency key (sent to receivers as ``Idempotency-Key``) and redacts
connector secrets from whatever the action returns or raises, so run records
and the audit log never hold them.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

from playbooks.connectors.redact import redact, redact_value
from store.base import Store


class ActionError(Exception):
    """An action failed or was called wrongly; the message says which and why."""


class TransientActionError(ActionError):
    """A failure worth retrying: a timeout, a refused connection, a 5xx or 429 answer."""


class NotConfigured(ActionError):
    """The connector the action needs is not configured.

    A real run fails on it; a dry-run reports it as a finding (``"not_configured"``)
    instead of failing, so a drill on a fresh installation still walks the whole procedure.
    """


class Impact(enum.Enum):
    """Safety tier of an action, from harmless to one that needs approval and a dry-run first."""

    READ = "read"  # reads data, or writes only CitySOC's own incident record
    NOTIFY = "notify"  # tells people or systems (mail, webhooks, tickets, escalations)
    CONTAIN = "contain"  # reversible write to IT controls (block lists, firewall rules, accounts)
    OT_WRITE = "ot_write"  # writes to PLCs/RTUs/SCADA: approval + dry-run always
    PUBLIC_SERVICE_CUT = "public_service_cut"  # takes a public-service device or system off line: approval + dry-run

    @property
    def needs_approval(self) -> bool:
        """True for the tiers that must be preceded by an approval step and a dry-run."""
        return self in (Impact.OT_WRITE, Impact.PUBLIC_SERVICE_CUT)


@dataclass(frozen=True)
class ActionContext:
    """What an action may use besides its arguments.

    ``drill`` makes every action simulate: validate, build the request, return
    it, change nothing.  ``step`` is the playbook step ref; with the run id, the
    action name and the arguments it gives the idempotency key.
    """

    store: Store
    run_id: str
    incident_id: str | None
    home: Path
    drill: bool = False
    actor: str = "playbooks"
    step: str = ""
    idempotency_key: str = ""


def idempotency_key(ctx: ActionContext, action_name: str, args: Mapping[str, Any]) -> str:
    """Stable across retries and redeliveries of one step; different for each item of a loop (args differ)."""
    text = json.dumps([ctx.run_id, ctx.step, action_name, dict(args)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    func: Callable[..., Any]
    impact: Impact
    description: str
    idempotent: bool = False

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
        return {
            "name": self.name,
            "impact": self.impact.value,
            "idempotent": self.idempotent,
            "description": self.description,
            "arguments": props,
        }


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

    def __iter__(self) -> Iterator[ActionSpec]:
        return iter([self._actions[n] for n in self.names()])

    @property
    def version(self) -> str:
        """Recorded on each run, so a run says which actions it ran with."""
        text = json.dumps([self._actions[n].schema() for n in self.names()], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


REGISTRY = ActionRegistry()


def action(
    name: str, impact: Impact, idempotent: bool = False, registry: ActionRegistry | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` as action ``name``; the registered callable adds the idempotency key and redaction."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run(ctx: ActionContext, **kwargs: Any) -> Any:
            if not ctx.idempotency_key:
                ctx = dataclasses.replace(ctx, idempotency_key=idempotency_key(ctx, name, kwargs))
            try:
                output = func(ctx, **kwargs)
            except NotConfigured as exc:
                if not ctx.drill:
                    raise
                return redact_value({"simulated": True, "not_configured": str(exc), "arguments": dict(kwargs)})
            except ActionError as exc:
                message = redact(str(exc))
                # a message that held a secret is re-raised without its cause, whose text holds it too
                if message != str(exc):
                    raise type(exc)(message) from None
                raise
            except (OSError, ValueError) as exc:
                # connectors translate their own failures; what is left is local (a full disk, a bad value)
                text = f"{name}: {type(exc).__name__}: {exc}"
                message = redact(text)
                error = TransientActionError if isinstance(exc, OSError) else ActionError
                raise error(message) from (exc if message == text else None)
            return redact_value(output)

        (registry or REGISTRY).register(ActionSpec(name, run, impact, inspect.getdoc(func) or "", idempotent))
        return func

    return register
