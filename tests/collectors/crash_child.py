"""The collector process the crash test kills: HTTP ingest -> spool -> SQLite store.

Run as ``python -m tests.collectors.crash_child <state dir> <port>``; it serves
until killed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from collectors.pipeline import IngestPipeline
from collectors.spool import Spool, SpoolDrainer
from collectors.transports.http_ingest import HttpIngestApp, HttpIngestServer, TokenStore
from store.sqlite import SQLiteStore


def main(state: Path, port: int) -> None:
    store = SQLiteStore(state / "citysoc.db")
    pipeline = IngestPipeline(store, name="crash-child")
    spool = Spool(state / "spool")
    drainer = SpoolDrainer(spool, pipeline, interval=0.05)
    drainer.start()
    server = HttpIngestServer(HttpIngestApp(TokenStore(state / "tokens.json"), spool), port=port)
    server.start()
    threading.Event().wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
