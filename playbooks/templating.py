"""Sandboxed templating and conditions over a run's context.

Template text and ``if`` expressions come from the playbook author; incident,
event and step-output values only ever appear in the *context*, so they are
substituted as data and never parsed as templates themselves.  The result of
rendering is a plain string handed to an action as an argument -- no action
passes it to a shell or ``eval``.  Jinja2's immutable sandbox refuses
attribute tricks such as ``''.__class__`` in the author's text, and
``StrictUndefined`` makes a missing field an error instead of an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplatingError(Exception):
    """A template or condition failed to render; the message names the argument."""


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def render_value(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """Render strings holding ``{{ }}``; lists and mappings recursively; other values unchanged."""
    if is_template(value):
        try:
            return _ENV.from_string(value).render(**context)
        except TemplateError as exc:
            raise TemplatingError(f"{where}: template error: {exc}") from exc
    if isinstance(value, list):
        return [render_value(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: render_value(v, context, f"{where}.{k}") for k, v in value.items()}
    return value


def render_args(args: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    return {key: render_value(value, context, f"argument {key!r}") for key, value in args.items()}


def compile_condition(expression: str) -> Any:
    """Compile an ``if`` expression (raises jinja2.TemplateSyntaxError when it does not parse)."""
    return _ENV.compile_expression(expression, undefined_to_none=False)


def evaluate(expression: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a condition in the sandbox; a missing field or unsafe access is an error, not False."""
    try:
        return bool(compile_condition(expression)(**context))
    except TemplateError as exc:
        raise TemplatingError(f"condition {expression!r}: {exc}") from exc
