"""The one root exception of the connectors package."""

from __future__ import annotations


class ConnectorError(Exception):
    """A connector is misconfigured, a secret is missing, or a remote call failed; the message says which."""


class TransientConnectorError(ConnectorError):
    """A failure worth retrying later: timeout, refused connection, 5xx or 429."""
