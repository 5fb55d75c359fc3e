"""``citysoc intel`` and ``citysoc assets`` end to end on a fresh data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stix2
from click.testing import CliRunner

from console.cli import cli
from enrichment.assets import AssetEnricher, AssetRegister
from store.sqlite import SQLiteStore
from tests.helpers import REPO, event, shared

FEED = REPO / "tests" / "data" / "intel" / "city-feed.json"
REGISTER = REPO / "tests" / "data" / "enrichment" / "register.csv"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path))
    monkeypatch.delenv("CITYSOC_STORE_URL", raising=False)
    monkeypatch.delenv("CITYSOC_ASSETS", raising=False)
    return tmp_path


def test_import_retro_hunts_and_the_incident_exports_as_stix(home: Path) -> None:
    runner = CliRunner()
    good_rows = [line for line in REGISTER.read_text().splitlines() if not line.startswith("bad-")]
    (home / "register.csv").write_text("\n".join(good_rows) + "\n")
    result = runner.invoke(cli, ["assets", "import", str(home / "register.csv")])
    assert result.exit_code == 0, result.output
    register = AssetRegister.load(home / "assets.json")
    store = SQLiteStore(home / "citysoc.db")
    store.put_events(
        [AssetEnricher(register).enrich(event(0, {"source.ip": "10.30.1.10", "destination.ip": "203.0.113.45"}))]
    )
    store.close()

    result = runner.invoke(cli, ["intel", "import", str(FEED)])
    assert result.exit_code == 0, result.output
    assert "6 new indicators, 1 rejected" in result.output
    assert "retro-hunt: 1 new alerts" in result.output

    store = SQLiteStore(home / "citysoc.db")
    [incident] = store.list_incidents()
    assert incident.entities["asset.agency"] == ("Hanoi Water Company",)
    store.close()
    out = home / "incident.json"
    result = runner.invoke(cli, ["intel", "export-incident", incident.id, "-o", str(out)])
    assert result.exit_code == 0, result.output
    bundle = stix2.parse(out.read_text(), allow_custom=True)
    assert any(o.type == "sighting" for o in bundle.objects)


def test_assets_import_refuses_a_file_with_bad_rows_and_names_them(home: Path) -> None:
    result = CliRunner().invoke(cli, ["assets", "import", str(REGISTER)])
    assert result.exit_code != 0
    assert "register.csv:5" in result.output and "register.csv:6" in result.output
    assert not (home / "assets.json").exists()


def test_coverage_with_the_ics_bundle_names_techniques(home: Path) -> None:
    bundle = shared("attack-ics", "ics-attack-18.1.json")
    result = CliRunner().invoke(cli, ["intel", "coverage", "--attack", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    matrix = json.loads(result.output[: result.output.rindex("}") + 1])
    assert matrix["T0836"]  # the Modbus-write rule is tagged attack.t0836
    assert "T0803" in matrix
