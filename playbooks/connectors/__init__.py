"""Connectors: how actions reach the outside world (HTTP APIs, SMTP, MQTT) and the secrets they use.

Connectors are configured by name in ``$CITYSOC_HOME/connectors.yml``
(:mod:`.config`); credentials are referenced there by secret *name* and kept
encrypted at rest (:mod:`.secrets`).  Secret values are only ever read inside
a connector, and every value read is remembered by :mod:`.redact` so it is
masked in whatever an action returns, raises or logs.
"""
