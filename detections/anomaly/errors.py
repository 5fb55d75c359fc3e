"""Errors of the anomaly-model package: one root, each saying what, where and how to fix it."""

from __future__ import annotations


class AnomalyError(Exception):
    """Root of every anomaly-model error."""


class DataError(AnomalyError):
    """Training or scoring data is malformed (the message names file and line)."""


class ModelFileError(AnomalyError):
    """A saved model file is missing, unreadable, tampered with or of an unknown version."""


class UnknownModelError(AnomalyError):
    """No model is registered under the requested name."""
