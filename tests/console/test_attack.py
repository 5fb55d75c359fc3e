"""ATT&CK techniques (names, tactics, mitigations) on the incident page and in the API."""

from __future__ import annotations

from pathlib import Path

from console.app import create_app
from console.auth import create_user
from store.models import Alert, Incident, IncidentStatus, Severity
from store.sqlite import SQLiteStore
from tests.helpers import T0, shared


def _seed(db: Path) -> None:
    store = SQLiteStore(db)
    store.create_incident(
        Incident("INC-A", "Modbus write", Severity.HIGH, IncidentStatus.NEW, T0, T0, T0, T0, "source.ip=10.20.5.66"),
        actor="t",
    )
    alert = Alert("A1", "r", "Modbus Write", Severity.HIGH, T0, T0, (), {}, ("attack.t0836", "attack.t1110.001"))
    store.add_alert(alert)
    store.attach_alert("INC-A", alert, actor="t")
    create_user(store, "analyst1", "correct horse battery staple", ("analyst",), False)
    store.close()


def _client(db: Path, bundles: list[str]):  # type: ignore[no-untyped-def]
    app = create_app({"STORE_URL": f"sqlite:///{db}", "TESTING": True, "SECRET_KEY": "k", "ATTACK_BUNDLES": bundles})
    client = app.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/login", data={"username": "analyst1", "password": "correct horse battery staple", "csrf_token": token}
    )
    return client


def test_incident_shows_ics_technique_names_tactics_and_mitigations(tmp_path: Path) -> None:
    bundle = next(shared("attack-ics").glob("*.json"))
    _seed(tmp_path / "db")
    client = _client(tmp_path / "db", [str(bundle)])
    page = client.get("/incidents/INC-A").get_data(as_text=True)
    assert "T0836" in page and "Modify Parameter" in page
    data = client.get("/api/v1/incidents/INC-A").get_json()
    by_id = {t["id"]: t for t in data["attack"]}
    assert by_id["T0836"]["name"] == "Modify Parameter" and by_id["T0836"]["domain"] == "ics"
    assert by_id["T0836"]["tactics"] and by_id["T0836"]["mitigations"]
    assert by_id["T1110.001"]["known"] is False  # Enterprise bundle not loaded: id only, no made-up name


def test_without_a_bundle_only_ids_are_shown(tmp_path: Path) -> None:
    _seed(tmp_path / "db")
    client = _client(tmp_path / "db", [])
    page = client.get("/incidents/INC-A").get_data(as_text=True)
    assert "T0836" in page and "No ATT&amp;CK bundle loaded" in page and "Modify Parameter" not in page
