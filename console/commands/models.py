"""``citysoc models``: list, train, evaluate, drift and model cards (a thin shell over detections.anomaly)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

from detections.anomaly import MODELS, AnomalyError, AnomalyModel, get_model
from detections.anomaly.iot import IoTDeviceModel
from detections.anomaly.lifecycle import (
    drift_report,
    evaluate_model,
    evaluate_stored,
    model_card,
    train,
    train_from_store,
)
from detections.anomaly.storage import load_model, model_dir, save_model, versions
from detections.anomaly.tabular import Table, read_csv
from store.registry import open_store

CSV = click.Path(path_type=Path, exists=True, dir_okay=False)


@click.group(name="models")
def command() -> None:
    """Anomaly models: list, train, evaluate, drift, card."""


@command.command(name="list")
def list_models() -> None:
    """Every registered model: name, domain, training state, description."""
    for name in sorted(MODELS):
        cls = MODELS[name]
        found = versions(name)
        state = f"trained v{found[-1]}" if found else "untrained"
        click.echo(f"{name}\t{cls.domain}\t{state}\t{cls.description}")


def _fail(exc: AnomalyError) -> None:
    raise click.ClickException(str(exc)) from exc


def _has(path: Path, column: str) -> bool:
    with path.open(encoding="utf-8") as fh:
        return column in [h.strip() for h in fh.readline().split(",")]


def _read(path: Path, label_column: str, required: bool = False) -> Table:
    """A CSV table; its label column is read (not taken as a feature) whenever present."""
    return read_csv(path, label_column if required or _has(path, label_column) else None)


@command.command(name="train")
@click.argument("model")
@click.option("--train", "train_csv", type=CSV, help="Normal-operation CSV.")
@click.option("--from-store", is_flag=True, help="Train on the store's events of the model's baseline window.")
@click.option("--process", help="With --from-store: only this ot.process.")
@click.option("--tune", "tune_csv", type=CSV, help="Labelled CSV to choose the threshold.")
@click.option("--label-column", default="ATT_FLAG", show_default=True)
def train_cmd(
    model: str, train_csv: Path | None, from_store: bool, process: str | None, tune_csv: Path | None, label_column: str
) -> None:
    """Train MODEL (on a CSV or the store) and save a new signed version with its model card.

    Run it from cron for scheduled retraining; every run adds a version.
    """
    if (train_csv is None) != from_store:
        raise click.UsageError("give exactly one of --train CSV and --from-store")
    try:
        cls = get_model(model)
        metrics = None
        now = datetime.now(timezone.utc)
        if train_csv is None:
            with open_store() as store:
                if issubclass(cls, IoTDeviceModel):
                    events = list(store.iter_events(now - cls.training_window, now))
                    trained: AnomalyModel = IoTDeviceModel().fit_events(events)
                else:
                    trained = train_from_store(model, store, now, process)
        else:
            tune = _read(tune_csv, label_column, required=True) if tune_csv else None
            trained = train(model, _read(train_csv, label_column), tune)
            if tune is not None:
                # the threshold was chosen on these rows: the card says so
                metrics = evaluate_model(trained, tune) | {"measured_on": "the tuning data (in-sample, optimistic)"}
        path = save_model(trained, model_card(trained, metrics, now))
    except AnomalyError as exc:
        _fail(exc)
        return
    click.echo(f"{model}: saved {path}")


@command.command(name="card")
@click.argument("model")
def card_cmd(model: str) -> None:
    """Print the model card of MODEL's latest version (after verifying its signature)."""
    try:
        path = model_dir(model)
        load_model(path)  # a tampered model's card is not trusted either
    except AnomalyError as exc:
        _fail(exc)
        return
    click.echo((path / "card.md").read_text())


@command.command(name="evaluate")
@click.argument("model")
@click.option("--train", "train_csv", type=CSV, required=True, help="Normal-operation CSV to train on.")
@click.option("--tune", "tune_csv", type=CSV, help="Labelled CSV to choose the threshold on.")
@click.option("--test", "test_csv", type=CSV, required=True, help="Labelled CSV to score.")
@click.option("--label-column", required=True, help="Column holding 1 for attack rows.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate_cmd(
    model: str, train_csv: Path, tune_csv: Path | None, test_csv: Path, label_column: str, as_json: bool
) -> None:
    """Train MODEL on TRAIN (threshold from TUNE if given) and report metrics on labelled TEST."""
    try:
        get_model(model)
        tune = _read(tune_csv, label_column, required=True) if tune_csv else None
        trained = train(model, _read(train_csv, label_column), tune)
        result = evaluate_model(trained, _read(test_csv, label_column, required=True))
    except AnomalyError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")


@command.command(name="drift")
@click.argument("model")
@click.option("--data", "data_csv", type=CSV, required=True, help="Recent data (CSV).")
@click.option("--label-column", default="ATT_FLAG", show_default=True)
def drift_cmd(model: str, data_csv: Path, label_column: str) -> None:
    """Drift report of MODEL's latest version on recent data (one JSON object)."""
    try:
        trained = load_model(model_dir(model))
        report = drift_report(trained, _read(data_csv, label_column))
    except AnomalyError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(report, sort_keys=True))


@command.command(name="evaluate-store")
@click.argument("model")
@click.option("--label-field", required=True, help="Event field marking attack rows with 1, e.g. labels.att_flag.")
@click.option("--start", type=click.DateTime(), help="First event time (UTC).")
@click.option("--end", type=click.DateTime(), help="End of the period (exclusive, UTC).")
@click.option("--process", help="Only this ot.process.")
def evaluate_store_cmd(
    model: str, label_field: str, start: datetime | None, end: datetime | None, process: str | None
) -> None:
    """Score stored, labelled SCADA tag events with MODEL's latest saved version (one JSON object)."""
    utc = [t.replace(tzinfo=timezone.utc) if t is not None else None for t in (start, end)]
    try:
        trained = load_model(model_dir(model))
        with open_store() as store:
            result = evaluate_stored(trained, store, utc[0], utc[1], label_field, process)
    except AnomalyError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(result, sort_keys=True))
