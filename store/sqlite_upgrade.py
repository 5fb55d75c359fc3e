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


def table_sql(conn: sqlite3.Connection, table: str) -> str | None:
    """The ``CREATE TABLE`` statement of ``table`` as the file stores it, or None when there is no such table."""
    row = conn.execute("SELECT sql FROM sqlite_schema WHERE type='table' AND name=?", (table,)).fetchone()
    return None if row is None else str(row[0])


def edit_table_sql(conn: sqlite3.Connection, table: str, old: str, new: str) -> bool:
    """Replace ``old`` by ``new`` in the stored ``CREATE TABLE`` of ``table`` (inside the caller's transaction).

    SQLite's own procedure for schema changes that leave the stored rows as they are (removing
    a CHECK constraint, see https://sqlite.org/lang_altertable.html, "otherwise"): edit the
    schema text with ``writable_schema`` and bump ``schema_version`` so every connection reads
    it again -- no copy of the table, whatever its size.  Only for such changes: one that
    alters how rows are stored corrupts the file.  Returns whether the text contained ``old``.
    """
    sql = table_sql(conn, table)
    if sql is None or old not in sql:
        return False
    version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
    conn.execute("PRAGMA writable_schema=ON")
    try:
        conn.execute("UPDATE sqlite_schema SET sql=? WHERE type='table' AND name=?", (sql.replace(old, new), table))
        conn.execute(f"PRAGMA schema_version={version + 1}")  # an int we read: nothing else reaches the SQL text
    finally:
        conn.execute("PRAGMA writable_schema=OFF")
    return True
