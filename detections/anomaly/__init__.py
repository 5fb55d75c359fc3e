"""Anomaly models (scikit-learn side of detection): framework, OT process, sensor integrity, lifecycle.

Model modules register themselves at import; this explicit list is the registry's source.
"""

from __future__ import annotations

from detections.anomaly import integrity, iot, ot  # noqa: F401  (registers the models)
from detections.anomaly.base import MODELS, AnomalyModel, Deviation, get_model, register_model
from detections.anomaly.errors import AnomalyError, DataError, ModelFileError, UnknownModelError

__all__ = [
    "MODELS",
    "AnomalyError",
    "AnomalyModel",
    "DataError",
    "Deviation",
    "ModelFileError",
    "UnknownModelError",
    "get_model",
    "register_model",
]
