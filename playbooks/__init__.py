"""Playbooks: SOAR response as data, run by a state-machine engine on Celery workers."""
