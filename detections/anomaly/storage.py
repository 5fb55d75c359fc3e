"""Saving and loading trained models safely: JSON + npz arrays under a signed manifest.

No pickle anywhere: the state is JSON, the learned arrays an ``.npz`` read with
``allow_pickle=False``.  ``manifest.json`` lists the SHA-256 of every file and
carries an HMAC-SHA256 over that list with a key kept in ``CITYSOC_HOME``
(``model-signing.key``, created on first save, mode 0600).  Loading checks the
HMAC first, then each digest, and refuses a tampered or unsigned model with a
clear error.  Versions are kept side by side: ``<root>/<model>/v<N>/``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from detections.anomaly.base import AnomalyModel, get_model
from detections.anomaly.errors import ModelFileError
from store.registry import home

FORMAT = "citysoc-anomaly-model/1"
FILES = ("state.json", "params.npz", "card.md")


def models_root() -> Path:
    return Path(os.environ.get("CITYSOC_MODELS") or home() / "models")


def signing_key(create: bool = False) -> bytes:
    path = home() / "model-signing.key"
    if not path.exists():
        if not create:
            raise ModelFileError(f"{path}: no model signing key; models saved elsewhere cannot be trusted here")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _sign(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, json.dumps(body, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def versions(name: str, root: Path | None = None) -> list[int]:
    base = (root or models_root()) / name
    if not base.is_dir():
        return []
    return sorted(int(p.name[1:]) for p in base.iterdir() if p.name[:1] == "v" and p.name[1:].isdigit())


def save_model(model: AnomalyModel, card: str, root: Path | None = None) -> Path:
    """Write the next version of ``model``; returns its directory."""
    base = (root or models_root()) / model.name
    version = (versions(model.name, root) or [0])[-1] + 1
    target = base / f"v{version}"
    target.mkdir(parents=True, exist_ok=False)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **model.params)
    state = model.state() | {"format": FORMAT, "version": version}
    blobs = {
        "state.json": json.dumps(state, indent=2, sort_keys=True).encode(),
        "params.npz": buf.getvalue(),
        "card.md": card.encode(),
    }
    for fname, data in blobs.items():
        (target / fname).write_bytes(data)
    body = {
        "format": FORMAT,
        "model": model.name,
        "version": version,
        "files": {f: hashlib.sha256(d).hexdigest() for f, d in blobs.items()},
    }
    manifest = body | {"hmac": _sign(signing_key(create=True), body)}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return target


def model_dir(name: str, version: int | None = None, root: Path | None = None) -> Path:
    found = versions(name, root)
    if not found:
        raise ModelFileError(f"model {name!r} has no saved version under {root or models_root()}; train it first")
    return (root or models_root()) / name / f"v{version or found[-1]}"


def load_model(path: Path) -> AnomalyModel:
    """Load a saved model directory after checking its HMAC and digests."""
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{manifest_path}: not a {FORMAT} manifest")
    body = {k: manifest.get(k) for k in ("format", "model", "version", "files")}
    if not hmac.compare_digest(str(manifest.get("hmac", "")), _sign(signing_key(), body)):
        raise ModelFileError(
            f"{manifest_path}: signature does not match (tampered manifest or signed with another key); "
            "retrain the model with 'citysoc models train'"
        )
    files = body["files"]
    if not isinstance(files, dict) or set(files) != set(FILES):
        raise ModelFileError(f"{manifest_path}: manifest must list exactly {', '.join(FILES)}")
    blobs = {}
    for fname in FILES:
        try:
            data = (path / fname).read_bytes()
        except OSError as exc:
            raise ModelFileError(f"{path / fname}: cannot read ({exc.strerror})") from exc
        if hashlib.sha256(data).hexdigest() != files[fname]:
            raise ModelFileError(
                f"{path / fname}: SHA-256 differs from the signed manifest; the file was tampered with"
            )
        blobs[fname] = data
    state = json.loads(blobs["state.json"])
    cls = get_model(str(state.get("model")))
    if state.get("model_version") != cls.version:
        raise ModelFileError(
            f"{path}: saved for {cls.name} v{state.get('model_version')}, this build has v{cls.version}"
        )
    try:
        with np.load(io.BytesIO(blobs["params.npz"]), allow_pickle=False) as npz:
            params = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise ModelFileError(f"{path / 'params.npz'}: not a plain array file ({exc})") from exc
    model = cls.from_state(state, params)
    model.meta["version"] = manifest["version"]
    return model
