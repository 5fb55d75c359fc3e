from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detections.anomaly.errors import ModelFileError
from detections.anomaly.lifecycle import model_card, train
from detections.anomaly.storage import load_model, save_model, versions
from lab.scada import simulate


@pytest.fixture()
def saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path / "home"))
    model = train("ot-process", simulate(3, seed=5))
    return save_model(model, model_card(model), root=tmp_path / "models")


def test_round_trip_keeps_scores(saved: Path, tmp_path: Path) -> None:
    data = simulate(1, seed=6)
    loaded = load_model(saved)
    again = train("ot-process", simulate(3, seed=5))
    values = data.select(loaded.features)
    np.testing.assert_allclose(loaded.scores(values), again.scores(values))
    assert versions("ot-process", tmp_path / "models") == [1]
    assert "# Model card: ot-process" in (saved / "card.md").read_text()


def test_tampered_params_are_refused(saved: Path) -> None:
    blob = bytearray((saved / "params.npz").read_bytes())
    blob[-40] ^= 0xFF
    (saved / "params.npz").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match=r"params\.npz: SHA-256 differs"):
        load_model(saved)


def test_tampered_threshold_with_rehashed_manifest_is_refused(saved: Path) -> None:
    state = json.loads((saved / "state.json").read_text())
    state["threshold"] = 1e9
    (saved / "state.json").write_text(json.dumps(state))
    manifest = json.loads((saved / "manifest.json").read_text())
    import hashlib

    manifest["files"]["state.json"] = hashlib.sha256((saved / "state.json").read_bytes()).hexdigest()
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="signature does not match"):
        load_model(saved)


def test_other_key_is_refused(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(ModelFileError, match="no model signing key"):
        load_model(saved)
