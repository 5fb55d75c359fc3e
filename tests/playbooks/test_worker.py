"""Playbook runs on a real Celery worker process: embedded broker and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from playbooks.actions import REGISTRY
from playbooks.engine import new_run
from playbooks.model import PlaybookLibrary, default_library_path
from playbooks.worker import create_celery, enqueuer
from store.models import Incident, IncidentStatus, RunStatus, Severity, StepStatus
from store.sqlite import SQLiteStore
from tests.helpers import T0
from tests.services import celery_worker, redis_server


@pytest.fixture(params=["embedded", "redis"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "embedded":
        yield None
    else:
        with redis_server(tmp_path) as url:
            yield url


def test_run_completes_on_a_real_worker(broker: str | None, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"CITYSOC_HOME": str(home)}
    if broker:
        env["CITYSOC_BROKER_URL"] = broker
    store = SQLiteStore(home / "citysoc.db")
    store.create_incident(
        Incident(
            "INC-1",
            "Camera brute force",
            Severity.HIGH,
            IncidentStatus.NEW,
            T0,
            T0,
            T0,
            T0,
            "source.ip=10.20.5.66",
            entities={"source.ip": ("10.20.5.66",)},
        ),
        actor="test",
    )
    library = PlaybookLibrary.load([default_library_path()], REGISTRY)
    run = new_run(store, library.get("camera-compromise-ot-pivot"), "INC-1", REGISTRY)
    app = create_celery(broker or f"citysoc-sqla+sqlite:///{home / 'broker.sqlite'}")
    with celery_worker(env) as worker:
        enqueuer(app)(run.id)
        deadline = time.monotonic() + 60
        while store.get_run(run.id).status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            assert worker.poll() is None, "worker died"
            assert time.monotonic() < deadline, "run did not finish in 60 s"
            time.sleep(0.1)
    done = store.get_run(run.id)
    assert done.status is RunStatus.SUCCEEDED
    assert [(s.ref, s.status) for s in done.steps] == [
        ("evidence", StepStatus.SUCCEEDED),
        ("block-source", StepStatus.SUCCEEDED),
        ("contained", StepStatus.SUCCEEDED),
        ("escalate", StepStatus.PENDING),
    ]
    assert (home / "blocklists" / "ip-blocklist.txt").read_text().startswith("10.20.5.66")
    assert store.get_incident("INC-1").status is IncidentStatus.CONTAINED
    store.close()
