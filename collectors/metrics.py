"""Counters per source and stage, in the Prometheus text exposition format.

Transports count what they ``received`` and ``spooled`` (or ``rejected``) per
source; the pipeline's own counters (received, parsed, dead-lettered, stored,
duplicates, events from the future), in total and per source, and the clock
skew per source (last, smallest, largest) are added when rendering.  :class:`MetricsServer` serves ``GET /metrics`` on
127.0.0.1 for a Prometheus scraper; ``citysoc collect metrics`` prints the same
text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from collectors.pipeline import IngestStats

STAGES = ("received", "spooled", "rejected", "acknowledged", "parsed", "dead_lettered", "stored", "duplicates")


def _label(value: str) -> str:
    """A label value escaped as the exposition format asks (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters keyed by (source, stage)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def inc(self, source: str, stage: str, n: int = 1) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
        with self._lock:
            self._counts[(source, stage)] = self._counts.get((source, stage), 0) + n

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def render(self, pipeline_stats: IngestStats | None = None, gauges: Mapping[str, float] | None = None) -> str:
        """The exposition text: per-source counters, pipeline totals and extra gauges."""
        lines = [
            "# HELP citysoc_collector_records_total Records per source and stage.",
            "# TYPE citysoc_collector_records_total counter",
        ]
        for (source, stage), count in sorted(self.snapshot().items()):
            lines.append(f'citysoc_collector_records_total{{source="{_label(source)}",stage="{stage}"}} {count}')
        if pipeline_stats is not None:
            lines += [
                "# HELP citysoc_pipeline_records_total Records per pipeline stage, all sources.",
                "# TYPE citysoc_pipeline_records_total counter",
            ]
            for stage, count in pipeline_stats.as_dict().items():
                lines.append(f'citysoc_pipeline_records_total{{stage="{stage}"}} {count}')
            sources = sorted(pipeline_stats.sources.items())
            lines += [
                "# HELP citysoc_pipeline_source_records_total Records (events from parsed on) per source and stage.",
                "# TYPE citysoc_pipeline_source_records_total counter",
            ]
            for source, stats in sources:
                for stage, count in stats.counters().items():
                    lines.append(
                        f'citysoc_pipeline_source_records_total{{source="{_label(source)}",stage="{stage}"}} {count}'
                    )
            lines += [
                "# HELP citysoc_pipeline_source_skew_seconds Event time minus receipt time per source "
                "(positive: device clock ahead).",
                "# TYPE citysoc_pipeline_source_skew_seconds gauge",
            ]
            for source, stats in sources:
                for which in ("last", "min", "max"):
                    value = getattr(stats, f"skew_{which}")
                    if value is not None:
                        lines.append(
                            f'citysoc_pipeline_source_skew_seconds{{source="{_label(source)}",which="{which}"}} {value}'
                        )
        for name, value in sorted((gauges or {}).items()):
            lines += [f"# TYPE citysoc_{name} gauge", f"citysoc_{name} {value}"]
        return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves ``render()`` at ``GET /metrics``; port 0 binds a free port (see :attr:`address`)."""

    def __init__(self, render: Callable[[], str], host: str = "127.0.0.1", port: int = 0) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = outer.render().encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would flood the collector's log

        self.render = render
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
