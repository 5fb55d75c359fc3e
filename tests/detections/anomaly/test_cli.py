"""``citysoc models``: list, train, card, evaluate --json, drift, and refusal of a tampered model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from console.cli import cli
from lab.scada import Attack, simulate, write_csv
from tests.helpers import shared


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CITYSOC_MODELS", raising=False)
    write_csv(simulate(5, seed=1), tmp_path / "train.csv")
    write_csv(simulate(2, seed=2, attacks=[Attack("replay", 120, 24)]), tmp_path / "test.csv")
    return tmp_path


def test_list_names_every_model_first(env: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == 0, result.output
    names = [line.split("\t")[0] for line in result.output.splitlines()]
    assert names == ["iot-device", "ot-3sigma", "ot-process", "sensor-integrity"]
    assert all("\tuntrained\t" in line for line in result.output.splitlines())


def test_train_card_and_tampered_model_refused(env: Path) -> None:
    runner = CliRunner()
    trained = runner.invoke(cli, ["models", "train", "ot-process", "--train", str(env / "train.csv")])
    assert trained.exit_code == 0, trained.output
    assert "ot-process\tot\ttrained v1" in runner.invoke(cli, ["models", "list"]).output
    card = runner.invoke(cli, ["models", "card", "ot-process"])
    assert "# Model card: ot-process" in card.output and "lab-scada" not in card.output  # trained on the CSV path
    drift = runner.invoke(cli, ["models", "drift", "ot-process", "--data", str(env / "test.csv")])
    report = json.loads(drift.output)
    assert drift.exit_code == 0 and report["rows"] == 192 and "L_T1" in report["mean_shift_sigmas"]
    state = env / "home" / "models" / "ot-process" / "v1" / "state.json"
    state.write_text(state.read_text().replace('"threshold": ', '"threshold": 1000'))
    refused = runner.invoke(cli, ["models", "card", "ot-process"])
    assert refused.exit_code == 1
    assert "state.json: SHA-256 differs from the signed manifest" in refused.output


def test_evaluate_prints_one_json_object(env: Path) -> None:
    args = [
        "models",
        "evaluate",
        "sensor-integrity",
        "--train",
        str(env / "train.csv"),
        "--test",
        str(env / "test.csv"),
    ]
    result = CliRunner().invoke(cli, [*args, "--label-column", "ATT_FLAG", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    for key in ("precision", "recall", "f1", "attacks_detected", "attacks_total", "mean_detection_delay"):
        assert key in metrics
    assert metrics["attacks_total"] == 1 and metrics["attacks_detected"] == 1


def test_evaluate_batadal_and_bad_input(env: Path) -> None:
    train, test = shared("batadal", "dataset03.csv"), shared("batadal", "dataset04.csv")
    args = ["models", "evaluate", "ot-3sigma", "--train", str(train), "--test", str(test), "--label-column", "ATT_FLAG"]
    metrics = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    assert metrics["attacks_total"] == 7 and metrics["points"] == 4177
    bad = env / "bad.csv"
    bad.write_text("DATETIME,L_T1,ATT_FLAG\n06/01/14 00,0.5,0\n06/01/14 01,high,0\n")
    failed = CliRunner().invoke(cli, ["models", "train", "ot-process", "--train", str(bad)])
    assert failed.exit_code == 1 and "bad.csv:3:L_T1: 'high' is not a number" in failed.output
