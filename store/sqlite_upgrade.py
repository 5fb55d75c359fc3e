"""Schema upgrades of an embedded store file, done once even when several processes open it at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def upgrade_once(
    conn: sqlite3.Connection,
    done: Callable[[sqlite3.Connection], bool],
    upgrade: Callable[[sqlite3.Connection], object],
) -> None:
    """Run ``upgrade`` in one write transaction unless ``done`` says the file is already current.

    ``conn`` is in autocommit mode.  The usual case -- nothing to do -- takes no write lock;
    otherwise ``done`` is asked again under the lock, since another process may have won.
    A failing upgrade is rolled back whole, so the next open starts again.
    """
    if done(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not done(conn):
            upgrade(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
