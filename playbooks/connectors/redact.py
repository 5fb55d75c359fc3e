"""Masking of connector secrets in text, action outputs and log records.

Every secret value decrypted in this process is remembered here (with the
forms it is sent in, such as HTTP basic credentials).  :func:`redact` replaces
each with ``[secret:NAME]``; the action wrapper applies it to outputs and
errors, and :class:`RedactingFilter` to log records, so neither run records,
the audit log nor logs hold a secret even when a receiver echoes one back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

#: secrets shorter than this are not masked (a one- or two-letter value would mask ordinary text)
MIN_LENGTH = 4

_lock = threading.Lock()
_known: dict[str, str] = {}


def remember(name: str, value: str) -> None:
    """Mask ``value`` as secret ``name`` from now on in this process."""
    if len(value) >= MIN_LENGTH:
        with _lock:
            _known[value] = name


def redact(text: str) -> str:
    with _lock:
        known = sorted(_known.items(), key=lambda kv: len(kv[0]), reverse=True)
    for value, name in known:
        if value in text:
            text = text.replace(value, f"[secret:{name}]")
    return text


def redact_value(value: Any) -> Any:
    """``value`` with every string inside it (keys included) redacted; other types unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks remembered secrets in the formatted message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            clean_exc = redact(text)
            if clean_exc != text:
                record.exc_info, record.exc_text = None, clean_exc
        return True


def install(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger).

    Handler filters see the records propagated from every child logger (a logger's own
    filters would not), so this covers paho, urllib3, celery and our own modules.  Call it
    after logging is configured (the CLI and the worker).
    """
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt
