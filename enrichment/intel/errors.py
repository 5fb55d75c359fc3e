"""The root exception of the threat-intel package."""

from __future__ import annotations


class IntelError(Exception):
    """Threat intel could not be read, pulled or used; the message says which object or file and why."""
