"""Tabular process data (timestamp, numeric tag columns, optional label) read from CSV.

The evaluation harness and tabular training read CSV files such as the BATADAL
SCADA exports; every malformed cell is reported with file, line and column.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from detections.anomaly.errors import DataError

#: Timestamp layouts tried in order: ISO 8601, then BATADAL's ``dd/mm/yy HH``.
_TIME_FORMATS = ("%d/%m/%y %H", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Table:
    """Rows of numeric tag values in time order; ``labels`` is 1 for attack rows when known."""

    columns: tuple[str, ...]
    values: np.ndarray
    times: tuple[datetime, ...]
    labels: np.ndarray | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.columns):
            raise DataError(
                f"{self.source}: values of shape {self.values.shape} do not match {len(self.columns)} columns"
            )
        if len(self.times) != self.values.shape[0]:
            raise DataError(f"{self.source}: {len(self.times)} timestamps for {self.values.shape[0]} rows")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def select(self, columns: Sequence[str]) -> np.ndarray:
        """The values of ``columns`` in that order; a missing column is a clear error."""
        index = {name: i for i, name in enumerate(self.columns)}
        missing = [c for c in columns if c not in index]
        if missing:
            raise DataError(f"{self.source}: columns {missing} are missing (the model was trained with them)")
        return self.values[:, [index[c] for c in columns]]

    def slice(self, start: int, stop: int) -> Table:
        labels = None if self.labels is None else self.labels[start:stop]
        return Table(self.columns, self.values[start:stop], self.times[start:stop], labels, self.source)


def parse_time(text: str, where: str) -> datetime:
    text = text.strip()
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                ts = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise DataError(f"{where}: {text!r} is not a timestamp (ISO 8601 or dd/mm/yy HH)") from None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def read_csv(
    path: Path, label_column: str | None = None, time_column: str = "DATETIME", attack_value: str = "1"
) -> Table:
    """Read a CSV of numeric columns; ``label_column`` rows equal to ``attack_value`` are attacks.

    Other label values (BATADAL's ``-999`` for unlabelled) count as normal.
    """
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from exc
    with handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise DataError(f"{path}:1: empty file, a header row is expected")
        if time_column not in header:
            raise DataError(f"{path}:1: no {time_column!r} column (columns: {', '.join(header[:8])} ...)")
        if label_column is not None and label_column not in header:
            raise DataError(f"{path}:1: label column {label_column!r} not found")
        t_idx = header.index(time_column)
        l_idx = header.index(label_column) if label_column is not None else -1
        cols = [i for i in range(len(header)) if i not in (t_idx, l_idx)]
        rows: list[list[float]] = []
        times: list[datetime] = []
        labels: list[int] = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{lineno}: {len(row)} cells, the header has {len(header)}")
            times.append(parse_time(row[t_idx], f"{path}:{lineno}:{time_column}"))
            out = []
            for i in cols:
                try:
                    out.append(float(row[i]))
                except ValueError:
                    raise DataError(f"{path}:{lineno}:{header[i]}: {row[i]!r} is not a number") from None
            rows.append(out)
            if l_idx >= 0:
                labels.append(1 if row[l_idx].strip() == attack_value else 0)
    if not rows:
        raise DataError(f"{path}: no data rows")
    values = np.asarray(rows, dtype=float)
    if not np.all(np.isfinite(values)):
        raise DataError(f"{path}: non-finite values (NaN/inf) are not accepted")
    return Table(
        tuple(header[i] for i in cols),
        values,
        tuple(times),
        np.asarray(labels, dtype=int) if l_idx >= 0 else None,
        str(path),
    )
