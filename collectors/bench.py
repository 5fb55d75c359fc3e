"""Ingest benchmark (``citysoc bench ingest``): events/s per format for parse, parse+normalise+store, end to end.

For each parser in :data:`TEMPLATES` the benchmark makes ``records`` synthetic
records from one realistic line template per format (addresses, ports, times
and ids varied by a seeded RNG, so every record is a distinct event; this is a
load generator, not sample data), then measures in the same process:

* ``parse`` -- ``parser.parse`` alone: text to validated :class:`~store.event.Event`;
* ``pipeline`` -- :meth:`IngestPipeline.ingest` into a fresh :class:`SQLiteStore`:
  parse, provenance stamp, validation and the store's insert (events table,
  full-text index, term index), in batches of 500;
* ``reference`` -- the floor the store is compared with: the same number of
  already-serialised JSON documents inserted into a bare SQLite table (one
  primary key, same batch size, same WAL/synchronous settings as the store).

``store`` -- :func:`store.bench.bench_put_events` on every format's events, stamped as the
pipeline stamps them and serialised and indexed as parse workers deliver them: the store's
``put_events`` per event against a bare JSON insert of the same documents, same run
(the writer's floor with parse workers).

``end_to_end`` writes every format's records (:data:`END_TO_END_RECORDS` per format by
default: several seconds of sustained ingest) to log files and runs
:class:`FileCollector` on each (read, checkpoint, parse, stamp, store) into one
store, as ``citysoc ingest`` does: in one process parsing inline (one core); in
one collector process with one parse worker process (parsing on one core, storing
on the other, as ``citysoc ingest --parse-workers 1``); in one collector process
with two parse workers (``--parse-workers 2``: one writer, two parsing processes
sharing the two cores); and with two collector processes writing the same
database, each tailing one of two sources of every format.  Each run also
reports the CPU the collector processes spent per event (with a parse worker: what
the one writer spends).  The per-format rows run on one thread, so they are per
core; events/s counts stored events (a SCADA row is one event per tag, so its
record count is divided by the number of tags).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.base import CollectorError, RawRecord, get_parser
from collectors.pipeline import IngestPipeline, settle_heap
from collectors.provenance import Provenance
from collectors.transports.files import FileCollector
from store.bench import bench_put_events
from store.event import Event
from store.sqlite import SQLiteStore

T0 = datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC)
BATCH = 500


def _web(rnd: random.Random, i: int) -> str:
    ts = (T0 + timedelta(seconds=i)).strftime("%d/%b/%Y:%H:%M:%S +0000")
    status = rnd.choice((200, 200, 200, 204, 401, 404, 429, 500))
    return (
        f'10.20.{rnd.randrange(256)}.{rnd.randrange(1, 255)} - - [{ts}] "GET /api/v1/lights/{i}?zone={i % 30} '
        f'HTTP/1.1" {status} {rnd.randrange(10, 5000)} "-" "curl/8.5.0" rt=0.{rnd.randrange(1, 999):03d} '
        f"request_id={i:08x} api_key_id=key-{i % 40}"
    )


def _suricata(rnd: random.Random, i: int) -> str:
    ts = (T0 + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
    return json.dumps({
        "timestamp": ts, "flow_id": 10**15 + i, "event_type": "alert", "src_ip": f"203.0.113.{rnd.randrange(1, 255)}",
        "src_port": rnd.randrange(1024, 65535), "dest_ip": f"10.20.1.{rnd.randrange(1, 255)}", "dest_port": 502,
        "proto": "TCP", "alert": {"action": "allowed", "gid": 1, "signature_id": 2000000 + i % 500, "rev": 2,
        "signature": "ET SCADA Modbus write from external network", "category": "Attempted Information Leak",
        "severity": 2}, "app_proto": "modbus",
    })  # fmt: skip


def _cef(rnd: random.Random, i: int) -> str:
    rt = int((T0 + timedelta(milliseconds=i)).timestamp() * 1000)
    return (
        f"CEF:0|Fortinet|FortiGate-600E|7.2.8|00000000{i % 90:02d}|traffic:forward deny|3|rt={rt} "
        f"src=203.0.113.{rnd.randrange(1, 255)} spt={rnd.randrange(1024, 65535)} dst=10.20.1.{rnd.randrange(1, 255)} "
        f"dpt=502 proto=TCP act=deny msg=Denied flow {i}"
    )


def _auditd(rnd: random.Random, i: int) -> str:
    epoch = T0.timestamp() + i / 1000
    return (
        f"type=SYSCALL msg=audit({epoch:.3f}:{100000 + i}): arch=c000003e syscall=59 success=yes exit=0 "
        f"ppid={rnd.randrange(2, 30000)} pid={rnd.randrange(2, 30000)} auid=1000 uid=0 euid=0 tty=pts0 ses=3 "
        f'comm="curl" exe="/usr/bin/curl" key="netexec"'
    )


def _iot(rnd: random.Random, i: int) -> str:
    return json.dumps({
        "timestamp": (T0 + timedelta(milliseconds=i)).isoformat(), "platform": "iot-hn-01",
        "event_type": rnd.choice(("auth_failure", "command_sent", "connected")), "protocol": "mqtt",
        "device": {"id": f"sl-{i % 5000:04d}", "type": "streetlight"},
        "actor": {"ip": f"10.20.7.{rnd.randrange(1, 255)}", "client_id": f"sl-{i % 5000:04d}"},
    })  # fmt: skip


def _zeek_ics(rnd: random.Random, i: int) -> str:
    return json.dumps({
        "_path": "s7comm", "ts": T0.timestamp() + i / 1000, "uid": f"C{i:017d}",
        "id.orig_h": f"10.30.1.{rnd.randrange(1, 255)}", "id.orig_p": rnd.randrange(1024, 65535),
        "id.resp_h": "10.30.3.5", "id.resp_p": 102, "is_orig": True, "rosctr_name": "Job",
        "function_code": "0x04", "function_name": "Read Var", "error_class": None, "error_code": None,
    })  # fmt: skip


SCADA_TAGS = tuple(f"PS{n // 4}_{('LT', 'FT', 'PT', 'RUN')[n % 4]}{n:02d}" for n in range(40))


def _scada(rnd: random.Random, i: int) -> str:
    if i == 0:
        return "timestamp," + ",".join(SCADA_TAGS)
    ts = (T0 + timedelta(seconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%S")
    return ts + "," + ",".join(f"{rnd.uniform(0, 120):.3f}" for _ in SCADA_TAGS)


#: parser name -> line maker (rng, index) -> one record
TEMPLATES: dict[str, Callable[[random.Random, int], str]] = {
    "web.access": _web,
    "suricata.eve": _suricata,
    "cef": _cef,
    "auditd": _auditd,
    "iot.platform": _iot,
    "zeek": _zeek_ics,
    "scada.csv": _scada,
}


def make_lines(name: str, count: int, seed: int = 7) -> list[str]:
    """``count`` records of the format; for SCADA CSV ``count`` events (header + count/tags rows)."""
    if name == "scada.csv":
        count = 1 + max(1, count // len(SCADA_TAGS))
    rnd = random.Random(seed)  # noqa: S311 -- a reproducible load generator, nothing secret
    return [TEMPLATES[name](rnd, i) for i in range(count)]


def _reference(path: Path, docs: list[str]) -> float:
    """Events/s of inserting already-serialised JSON documents into a bare table: the storage floor."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE docs(id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
    start = time.perf_counter()
    for first in range(0, len(docs), BATCH):
        with conn:
            conn.executemany(
                "INSERT INTO docs VALUES (?, ?) ON CONFLICT(id) DO NOTHING",
                ((str(first + n), doc) for n, doc in enumerate(docs[first : first + BATCH])),
            )
    elapsed = time.perf_counter() - start
    conn.close()
    return len(docs) / elapsed


def bench_format(name: str, records: int, workdir: Path) -> dict[str, Any]:
    """parse / pipeline / reference events/s for one parser."""
    lines = make_lines(name, records)
    raw = [RawRecord(line, f"bench:{name}", str(i), received=T0) for i, line in enumerate(lines)]
    parser = get_parser(name)
    start = time.perf_counter()
    events = [event for record in raw for event in parser.parse(record)]
    parse_s = time.perf_counter() - start
    store = SQLiteStore(workdir / f"{name}.db")
    try:
        pipeline = IngestPipeline(store, name="bench")
        start = time.perf_counter()
        stats = pipeline.ingest(raw, get_parser(name), batch_size=BATCH)
        pipeline_s = time.perf_counter() - start
    finally:
        store.close()
    if stats.dead_lettered or stats.stored != len(events):
        raise CollectorError(
            f"bench {name}: {stats.dead_lettered} dead letters, {stats.stored} of {len(events)} events stored"
        )
    reference = _reference(workdir / f"{name}-reference.db", [event.to_json() for event in events])
    return {
        "format": name,
        "records": records,
        "events": len(events),
        "parse_eps": len(events) / parse_s,
        "pipeline_eps": stats.stored / pipeline_s,
        "reference_eps": reference,
    }


def store_events(records: int) -> list[Event]:
    """Every format's events, stamped as :class:`IngestPipeline` stamps them (for the store-only benchmark)."""
    provenance = Provenance("bench", "bench-host")
    now = datetime.now(UTC)
    events: list[Event] = []
    for name in TEMPLATES:
        parser = get_parser(name)
        for i, line in enumerate(make_lines(name, records)):
            record = RawRecord(line, f"bench:{name}", str(i), received=T0)
            events.extend(provenance.stamp(event, record, parser, now) for event in parser.parse(record))
    return events


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of running processes (Linux ``/proc``; 0 where it cannot be read)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def source_files(workdir: Path, records: int, parts: int) -> list[list[tuple[str, Path]]]:
    """Each format's ``records`` written as ``parts`` log files (sources of one kind: two gateways, two
    firewalls...), made once per work directory; part n of every format, as (format, file), for process n."""
    files: list[list[tuple[str, Path]]] = [[] for _ in range(parts)]
    for fmt in TEMPLATES:
        lines = make_lines(fmt, records, seed=11)
        head, body = (lines[:1], lines[1:]) if fmt == "scada.csv" else ([], lines)  # the CSV header in each part
        for n in range(parts):
            path = workdir / f"{fmt}.{n + 1}-of-{parts}.log"
            if not path.exists():
                path.write_text("\n".join(head + body[n::parts]) + "\n", encoding="utf-8")
            files[n].append((fmt, path))
    return files


def _collect(
    files: list[tuple[str, str]], workdir: str, store_path: str, name: str, start: Any, out: Any,
    parse_workers: int = 0,
) -> None:
    """One collector process: FileCollector on each (format, log file), into the shared store."""
    import collectors.parsers  # noqa: F401 -- registers the parsers in this (spawned) process

    store = SQLiteStore(store_path)
    pipeline = IngestPipeline(store, name=name, parse_workers=parse_workers)
    try:
        pipeline.start()  # the workers are up before the clock starts
        tailers = [
            FileCollector(
                pipeline,
                get_parser(fmt),
                Path(path),
                Path(workdir) / "state" / Path(store_path).stem / name,
                batch_size=BATCH,
            )
            for fmt, path in files
        ]
        settle_heap()  # as ``citysoc ingest`` does once it is set up
        start.wait()  # every process is set up before the clock starts
        workers = pipeline.parse_worker_pids()
        began, cpu, worker_cpu = time.time(), time.process_time(), _cpu_seconds(workers)
        for tailer in tailers:
            tailer.run_once(drain=False)  # read the next file while the last batches of this one are parsed
        pipeline.drain()
        # this process (all its threads: with parse workers, the writer) and its parse workers
        ended, cpu, worker_cpu = time.time(), time.process_time() - cpu, _cpu_seconds(workers) - worker_cpu
        stats = pipeline.stats
        out.put((began, ended, stats.received, stats.stored, stats.dead_lettered, cpu, worker_cpu))
    finally:
        pipeline.close()
        store.close()


def end_to_end(
    records: int, workdir: Path, processes: int = 1, parse_workers: int = 0, attempt: int = 0
) -> dict[str, Any]:
    """Every format from log files through FileCollector into one store (a new one per ``attempt``).

    With ``processes`` > 1 each format's records come from that many sources (log files, as a
    city has several gateways and firewalls of one kind) and each collector process tails one
    source of every kind, so the processes carry the same load (:func:`source_files`), writing
    to the same database (SQLite serialises their transactions).  With ``parse_workers`` each collector
    parses in that many worker processes and only stores itself.  Wall time runs from the
    moment every process (and worker) is ready to the end of the last one.
    """
    groups = source_files(workdir, records, processes)
    store_path = workdir / f"end-to-end-{processes}-{parse_workers}-{attempt}.db"  # a new store per run
    SQLiteStore(store_path).close()  # schema created once, before the writers start
    os.sync()  # what the stages before wrote goes to disk now, not during this run
    context = multiprocessing.get_context("spawn")  # no inherited locks or connections
    start = context.Barrier(processes)
    out = context.Queue()
    workers = [
        context.Process(
            target=_collect,
            args=([(fmt, str(path)) for fmt, path in group], str(workdir), str(store_path), f"bench-e2e-{n}", start,
                  out, parse_workers),
        )
        for n, group in enumerate(groups)
    ]
    for worker in workers:
        worker.start()
    results: list[tuple[float, float, int, int, int, float, float]] = []
    while len(results) < len(workers):
        try:
            results.append(out.get(timeout=1.0))
        except queue.Empty:
            # a process that died before reporting would otherwise leave us waiting for ever
            if any(not w.is_alive() and w.exitcode != 0 for w in workers):
                for w in workers:
                    w.kill()
                raise CollectorError("bench end to end: a collector process died before reporting") from None
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise CollectorError(f"bench end to end: a collector process exited with {worker.exitcode}")
    received = sum(r[2] for r in results)
    stored = sum(r[3] for r in results)
    dead = sum(r[4] for r in results)
    if dead:
        raise CollectorError(f"bench end to end: {dead} records dead-lettered")
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    return {
        "processes": processes,
        "parse_workers": parse_workers,
        "records": received,
        "events": stored,
        "events_per_s": stored / elapsed,
        "collector_cpu_us_per_event": sum(r[5] for r in results) / max(stored, 1) * 1e6,
        "parse_worker_cpu_us_per_event": sum(r[6] for r in results) / max(stored, 1) * 1e6,
    }


#: runs per end-to-end configuration, each on a new store: the table gives the best and the median
REPEATS = 3


def repeated(records: int, workdir: Path, processes: int, parse_workers: int, repeats: int = REPEATS) -> dict[str, Any]:
    """:func:`end_to_end` ``repeats`` times: the figures of the fastest run, with every run's rate and the median.

    On a shared machine a single run moves by half its value with what else runs; the fastest
    run is the one least disturbed, the median says what to expect.
    """
    results = [end_to_end(records, workdir, processes, parse_workers, attempt) for attempt in range(repeats)]
    rates = [run["events_per_s"] for run in results]
    best = max(results, key=lambda run: run["events_per_s"])
    return {**best, "rates": rates, "events_per_s_median": sorted(rates)[len(rates) // 2]}


#: the end-to-end runs: (collector processes, parse workers per collector)
END_TO_END_RUNS = ((1, 0), (1, 1), (1, 2), (2, 0))


def describe_run(run: dict[str, Any]) -> str:
    """How a run is named in the table, e.g. ``1 collector process + 2 parse workers``."""
    processes, workers = run["processes"], run["parse_workers"]
    text = f"{processes} collector process{'es' if processes > 1 else ''}"
    if workers:
        text += f" + {workers} parse worker{'s' if workers > 1 else ''}"
    return text


#: records per format of each end-to-end run (140,000 events in all): several seconds of sustained ingest
#: into a store that grows as a city's does, so start-up, the last batches and one process finishing
#: before the other weigh little, and the store's costs that grow with its size (its indexes, WAL
#: checkpoints, full-text merges) are in the figure
END_TO_END_RECORDS = 20_000


def run_ingest_bench(
    records: int = 5_000,
    print_to: Callable[[str], None] | None = print,
    runs: Sequence[tuple[int, int]] = END_TO_END_RUNS,
    repeats: int = REPEATS,
    end_to_end_records: int = END_TO_END_RECORDS,
) -> dict[str, Any]:
    """Run the benchmark; print a table (unless ``print_to`` is None) and return the figures.

    The per-format and store figures use ``records`` records per format, the end-to-end runs
    ``end_to_end_records`` (:data:`END_TO_END_RECORDS`).  End to end runs once per (collector
    processes, parse workers per collector) in ``runs``: by default one process parsing inline,
    one process with one parse worker (parsing on one core, storing on the other), one process
    with two parse workers (the single writer only stores while two workers parse and make the
    index entries), and two collector processes sharing the formats (each parsing inline, one
    database); each :data:`REPEATS` times on a new store (:func:`repeated`).  The last line names
    the fastest of them on the machine it ran on (docs/performance.md: two collector processes so far).
    """
    if records < 10 or end_to_end_records < 10:
        raise CollectorError("bench ingest: records (per format and end to end) must be at least 10")
    if repeats < 1:
        raise CollectorError("bench ingest: repeats must be at least 1")
    if not runs or any(processes < 1 or workers < 0 for processes, workers in runs):
        raise CollectorError("bench ingest: each run needs at least 1 collector process and 0 or more parse workers")
    import collectors.parsers  # noqa: F401 -- registers the parsers by name

    with tempfile.TemporaryDirectory(prefix="citysoc-bench-ingest-") as tmp:
        workdir = Path(tmp)
        rows = [bench_format(name, records, workdir) for name in TEMPLATES]
        store = bench_put_events(store_events(records), batch=BATCH, workdir=workdir, print_to=None)
        e2e = [repeated(end_to_end_records, workdir, processes, workers, repeats) for processes, workers in runs]
    result = {
        "records_per_format": records,
        "end_to_end_records_per_format": end_to_end_records,
        "formats": rows,
        "store": asdict(store),
        "end_to_end": e2e[-1],
        "end_to_end_best": max(e2e, key=lambda run: run["events_per_s"]),
        "end_to_end_runs": e2e,
    }
    if print_to is not None:
        print_to(f"ingest benchmark, {records} records per format, one thread; events/s")
        print_to(f"{'format':<14}{'events':>9}{'parse':>11}{'parse+store':>13}{'raw JSON insert':>17}{'store/raw':>11}")
        for row in rows:
            print_to(
                f"{row['format']:<14}{row['events']:>9}{row['parse_eps']:>11,.0f}{row['pipeline_eps']:>13,.0f}"
                f"{row['reference_eps']:>17,.0f}{row['pipeline_eps'] / row['reference_eps']:>11.2f}"
            )
        for line in store.lines():
            print_to(line)
        print_to(f"end to end: {end_to_end_records} records per format, {repeats} runs of each, a new store per run")
        for run in e2e:
            print_to(
                f"end to end (files -> FileCollector -> pipeline -> SQLite), all formats, {describe_run(run)}: "
                f"{run['events']} events, {run['events_per_s']:,.0f} events/s "
                f"(best of {len(run['rates'])}, median {run['events_per_s_median']:,.0f}; "
                f"runs {', '.join(f'{rate:,.0f}' for rate in run['rates'])}), "
                f"CPU per event: collector {run['collector_cpu_us_per_event']:.0f} µs"
                + (f", parse workers {run['parse_worker_cpu_us_per_event']:.0f} µs" if run["parse_workers"] else "")
            )
        best = max(e2e, key=lambda run: run["events_per_s"])
        print_to(f"end to end, fastest here: {describe_run(best)}, {best['events_per_s']:,.0f} events/s")
    return result
