"""Waiting for SQLite's locks where its own busy handler does not wait, or waits too long.

SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries, so a writer waiting
for another process's short transaction left the lock idle for up to tens of milliseconds
(:meth:`store.sqlite.SQLiteStore._begin`); and some requests are refused with ``SQLITE_BUSY``
at once, without the handler, where waiting could deadlock -- switching a file that is still
in rollback-journal mode to WAL while another connection opens it (:func:`use_wal`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

#: a waiting caller tries again after this many seconds, doubling up to the last
FIRST_NAP, LAST_NAP = 0.0001, 0.001
#: how long :func:`use_wal` waits by default, as the stores' busy timeout
DEFAULT_TIMEOUT_MS = 60_000


def until_free(attempt: Callable[[], object], timeout_ms: int, wait: bool = True) -> bool:
    """Run ``attempt`` until it does not fail with ``SQLITE_BUSY``; True once it ran.

    Without ``wait`` a busy answer returns False at once.  Otherwise it is tried again after
    0.1 ms, doubling up to 1 ms between tries, for up to ``timeout_ms`` milliseconds; then
    SQLite's own error ("database is locked") is raised.  Any other error is raised at once.
    """
    nap, deadline = FIRST_NAP, 0.0
    while True:
        try:
            attempt()
            return True
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            if not wait:
                return False
            now = time.monotonic()
            if not deadline:
                deadline = now + timeout_ms / 1000
            elif now > deadline:
                raise
        time.sleep(nap)
        nap = min(2 * nap, LAST_NAP)


def use_wal(conn: sqlite3.Connection, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
    """``PRAGMA journal_mode=WAL`` on a new connection, waiting while another connection opens the same file.

    A file still in rollback-journal mode (a new one, or one an earlier version wrote) is
    switched by the first connection that gets it to itself for a moment; another connection
    opening or switching it at the same instant is answered ``SQLITE_BUSY`` at once, without the
    busy handler, so two processes (or threads) starting on one file failed now and then with
    "database is locked".  Once the file is in WAL mode the pragma takes no lock.
    """
    until_free(lambda: conn.execute("PRAGMA journal_mode=WAL"), timeout_ms)
