"""The root exception of the compliance package; every error says what and where."""

from __future__ import annotations


class ComplianceError(Exception):
    """Root of all compliance errors."""


class CatalogueError(ComplianceError):
    """A control catalogue file or entry is invalid; the message names the file and control."""


class EvidenceError(ComplianceError):
    """An evidence query is unknown, registered twice, or got parameters it cannot use."""


class ArchiveError(ComplianceError):
    """A report archive is missing, unreadable, or does not verify."""
