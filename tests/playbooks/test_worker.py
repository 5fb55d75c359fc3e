"""Acceptance on real ``citysoc worker`` processes (no eager mode), on the embedded broker and on Redis.

A webhook receiver started by the test counts requests per ``Idempotency-Key``:
parallel branches, retries with backoff, a quorum approval, a timeout
escalation, and a worker killed with SIGKILL mid-step whose run resumes on a
new worker without repeating completed side effects.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from playbooks.actions import REGISTRY
from playbooks.approvals import decide
from playbooks.model import PlaybookLibrary, load_file
from playbooks.runner import new_run
from playbooks.worker import create_celery, enqueuer
from store.models import Incident, IncidentStatus, PlaybookRun, RunStatus, Severity
from store.sqlite import SQLiteStore
from tests.helpers import T0
from tests.services import free_port, redis_server

pytestmark = pytest.mark.slow


class Receiver:
    """A webhook sink: /ok answers 200, /flaky 503 twice per key, /hang waits until released."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.hanging = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key") or ""
                with receiver.lock:
                    receiver.requests.append((self.path, key))
                    seen = sum(1 for _, k in receiver.requests if k == key)
                status = 200
                if self.path == "/flaky" and seen <= 2:
                    status = 503
                if self.path == "/hang" and not receiver.release.is_set():
                    receiver.hanging.set()
                    receiver.release.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(k for _, k in self.requests)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    # its own process group, so SIGKILL takes the pool children down with it (a real crash of the host)
    return subprocess.Popen(
        [sys.executable, "-m", "console.cli", "worker", "--concurrency", "2", "--loglevel", "WARNING"],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes], kill: bool = False) -> None:
    if proc.poll() is None:
        if kill:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(params=["embedded", "redis"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], SQLiteStore, Receiver]]:
    home = tmp_path / "home"
    env = {"CITYSOC_HOME": str(home), "CITYSOC_PLAYBOOKS": str(tmp_path / "playbooks")}
    (tmp_path / "playbooks").mkdir()
    store = SQLiteStore(home / "citysoc.db")
    store.create_incident(
        Incident("INC-1", "Camera brute force", Severity.HIGH, IncidentStatus.NEW, T0, T0, T0, T0, "k"), actor="t"
    )
    with Receiver() as receiver:
        if request.param == "embedded":
            env["CITYSOC_BROKER_URL"] = f"citysoc-sqla+sqlite:///{home / 'broker.sqlite'}"
            yield env, store, receiver
        else:
            with redis_server(tmp_path) as url:
                env["CITYSOC_BROKER_URL"] = url
                yield env, store, receiver
    store.close()


def _playbook(env: dict[str, str], name: str, text: str, port: int) -> PlaybookLibrary:
    path = Path(env["CITYSOC_PLAYBOOKS"]) / f"{name}.yml"
    path.write_text(text.replace("URL", f"http://127.0.0.1:{port}"))
    return PlaybookLibrary([load_file(path, REGISTRY)])  # the worker loads the same file


def _wait(
    store: SQLiteStore, run_id: str, done: Callable[[PlaybookRun], bool], worker: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while not done(store.get_run(run_id)):
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, f"run {run_id} stuck: {store.get_run(run_id)}"
        time.sleep(0.05)


FLOW = """
id: acceptance-flow
steps:
  - {ref: first, action: notify_webhook, args: {url: URL/ok, message: "first {{ incident.title }}"}}
  - {ref: fan, parallel: [left, right]}
  - {ref: left, action: notify_webhook, args: {url: URL/flaky, message: left}, retries: 2, backoff: 0.2}
  - {ref: right, action: notify_webhook, args: {url: URL/ok, message: right}}
  - {ref: approve, approval: {roles: [responder], quorum: 2}, timeout: 60}
  - {ref: after, action: notify_webhook, args: {url: URL/ok, message: after}}
"""
ESCALATE = """
id: acceptance-escalate
steps:
  - {ref: ask, approval: {roles: [responder]}, timeout: 1, on_timeout: esc}
  - {ref: never, action: notify_webhook, args: {url: URL/ok, message: never}}
  - {ref: esc, action: notify_webhook, args: {url: URL/ok, message: "nobody decided"}}
"""
CRASH = """
id: acceptance-crash
steps:
  - {ref: one, action: notify_webhook, args: {url: URL/ok, message: one}}
  - {ref: two, action: notify_webhook, args: {url: URL/hang, message: two}, timeout: 4, retries: 2, backoff: 0.1}
  - {ref: three, action: notify_webhook, args: {url: URL/ok, message: three}}
"""


def test_branches_retries_quorum_escalation_and_a_killed_worker(
    setup: tuple[dict[str, str], SQLiteStore, Receiver],
) -> None:
    """One session: a worker runs three playbooks, is killed mid-step, and a new worker finishes them."""
    env, store, receiver = setup
    flow = _playbook(env, "flow", FLOW, receiver.port).get("acceptance-flow")
    escalate = _playbook(env, "escalate", ESCALATE, receiver.port).get("acceptance-escalate")
    crash = _playbook(env, "crash", CRASH, receiver.port).get("acceptance-crash")
    enqueue = enqueuer(create_celery(env["CITYSOC_BROKER_URL"]))
    runs = [new_run(store, pb, "INC-1", REGISTRY) for pb in (flow, escalate, crash)]
    run, esc, crashed = (r.id for r in runs)
    worker = start_worker(env)
    try:
        for r in runs:
            enqueue(r.id)
        _wait(store, run, lambda r: r.status is RunStatus.WAITING, worker)
        assert receiver.hanging.wait(60), "step 'two' never reached the receiver"
    finally:
        stop_worker(worker, kill=True)  # SIGKILL mid-step: 'one' done, 'two' in flight
    receiver.release.set()
    assert store.get_run(crashed).status is RunStatus.RUNNING

    class Resume:
        def resume(self, run_id: str) -> None:
            enqueue(run_id)

    # approvals given while no worker runs are picked up by the next one
    assert decide(store, run, "approve", "ann", ["responder"], True, "confirmed", Resume()) is not None
    assert decide(store, run, "approve", "bob", ["responder"], True, "agreed", Resume()) is None
    worker = start_worker(env)
    try:
        _wait(store, run, lambda r: r.status is RunStatus.SUCCEEDED, worker)
        _wait(store, crashed, lambda r: r.status is RunStatus.SUCCEEDED, worker)
        _wait(store, esc, lambda r: r.status is RunStatus.FAILED, worker)
    finally:
        stop_worker(worker, kill=True)
    counts = receiver.counts()
    # parallel branches, then a quorum of two, then the last step; the flaky branch retried with one key
    assert counts[f"{run}/first"] == 1 and counts[f"{run}/right"] == 1 and counts[f"{run}/after"] == 1
    assert counts[f"{run}/left"] == 3  # two 503s, then success
    steps = {s.ref: s for s in store.get_run(run).steps}
    assert steps["left"].attempt == 3
    assert steps["approve"].started and steps["left"].finished and steps["right"].finished
    assert steps["approve"].started >= max(steps["left"].finished, steps["right"].finished)  # joined first
    assert [d["user"] for d in steps["approve"].output["decisions"]] == ["ann", "bob"]
    # the approval nobody decided timed out and escalated
    assert counts[f"{esc}/esc"] == 1 and counts[f"{esc}/never"] == 0
    assert next(s for s in store.get_run(esc).steps if s.ref == "ask").output["timed_out"] is True
    # the killed worker: completed steps never repeated, the in-flight one re-sent with the same key
    assert counts[f"{crashed}/one"] == 1
    two = next(s for s in store.get_run(crashed).steps if s.ref == "two")
    assert two.attempt >= 2 and counts[f"{crashed}/two"] == two.attempt  # one request per attempt, one key
    assert counts[f"{crashed}/three"] == 1
    assert any(e.object == f"{crashed}/two" for e in store.audit_entries() if e.action == "step.timed_out")
    assert store.verify_audit() > 0
