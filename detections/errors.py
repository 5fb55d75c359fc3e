"""Root exception of the detections layer."""

from __future__ import annotations


class DetectionError(Exception):
    """Root of the detection errors; messages name the rule and its file."""
