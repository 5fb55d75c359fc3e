"""The collector process the parse-worker crash test kills: a tailed log -> parse workers -> SQLite store.

Run as ``python -m tests.collectors.crash_files_child <state dir> <log file> <parse workers>``;
it tails the log until killed, and writes the pids of its parse workers to
``<state dir>/workers-<pid>.txt`` once they are up.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import collectors.parsers  # noqa: F401 -- registers the parsers
from collectors.base import get_parser
from collectors.pipeline import IngestPipeline
from collectors.transports.files import FileCollector
from store.sqlite import SQLiteStore


def main(state: Path, log: Path, workers: int) -> None:
    store = SQLiteStore(state / "citysoc.db")
    pipeline = IngestPipeline(store, name="crash-files-child", parse_workers=workers)
    pipeline.start()
    pids = "\n".join(str(pid) for pid in pipeline.parse_worker_pids())
    (state / f"workers-{os.getpid()}.txt").write_text(pids, encoding="utf-8")
    collector = FileCollector(pipeline, get_parser("web.access"), log, state / "checkpoints", batch_size=500)
    collector.follow(threading.Event(), poll=0.05)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
