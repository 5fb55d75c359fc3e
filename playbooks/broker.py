"""The embedded Celery broker: kombu's SQLAlchemy transport on a SQLite file.

Subclassed only to poll faster than kombu's one-second default (the
SQLAlchemy transport hands every transport option to ``create_engine``, so
the interval cannot be set through options).  Registered as the transport
alias ``citysoc-sqla``: broker URL ``citysoc-sqla+sqlite:////path/broker.sqlite``.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as SQLAChannel
from kombu.transport.sqlalchemy import Transport as SQLATransport

ALIAS = "citysoc-sqla"
POLLING_INTERVAL = 0.05


class EmbeddedChannel(SQLAChannel):
    pass


class EmbeddedTransport(SQLATransport):
    Channel = EmbeddedChannel
    polling_interval = POLLING_INTERVAL


TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:EmbeddedTransport")
