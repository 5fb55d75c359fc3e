"""CitySOC's one compiled module; metadata, dependencies and entry points live in setup.cfg.

``detections.sigma._hitmask`` is the anchor index's per-event loop in C (see
detections/sigma/index.py).  It is optional: without a C compiler the install still succeeds
and the same loop runs in Python, slower (``citysoc bench detect`` says which one ran).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("detections.sigma._hitmask", ["detections/sigma/_hitmask.c"], optional=True)])
