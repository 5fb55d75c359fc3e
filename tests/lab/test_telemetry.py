"""Benign telemetry: byte-identical per seed, in the collectors' formats, with daily/weekly rhythms and physics."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest

from collectors.base import RawRecord, get_parser
from lab.city import load_city
from lab.scada import TAGS
from lab.scenario_spec import DAY
from lab.telemetry import CHANNELS, Rates, TelemetryError, activity, benign, ndjson

DIGEST = (
    "import hashlib; from lab.city import load_city; from lab.scenario_spec import DAY; "
    "from lab.telemetry import benign, ndjson; "
    "print(hashlib.sha256(ndjson(benign(load_city(), {seed}, DAY, 6)).encode()).hexdigest())"
)


def _digest_in_subprocess(seed: int, hashseed: str) -> str:
    # a fresh interpreter with its own string-hash seed: nothing may depend on set/dict hash order
    proc = subprocess.run([sys.executable, "-c", DIGEST.format(seed=seed)], capture_output=True, text=True,
                          timeout=120, check=True, env={**os.environ, "PYTHONHASHSEED": hashseed})
    return proc.stdout.strip()


def test_same_seed_gives_byte_identical_telemetry() -> None:
    city = load_city()
    here = hashlib.sha256(ndjson(benign(city, 7, DAY, 6)).encode()).hexdigest()
    assert hashlib.sha256(ndjson(benign(city, 7, DAY, 6)).encode()).hexdigest() == here
    assert _digest_in_subprocess(7, "12345") == here  # this interpreter hashes strings with a random seed of its own
    assert hashlib.sha256(ndjson(benign(city, 8, DAY, 6)).encode()).hexdigest() != here


def test_every_line_is_in_its_collector_format() -> None:
    records = benign(load_city(), 3, DAY, 4)
    parsers = {channel: get_parser(name) for channel, name in CHANNELS.items()}
    counts: Counter[str] = Counter()
    for i, r in enumerate(records):
        events = parsers[r.channel].parse(RawRecord(r.line, f"lab:{r.channel}", str(i)))
        counts[r.channel] += 1
        if r.channel != "scada" or i:  # the CSV header yields no event
            assert events or r.channel == "scada", r.line
    assert set(counts) == set(CHANNELS)
    assert not any(r.malicious for r in records)
    assert records == sorted(records, key=lambda r: (r.ts, r.channel, r.line))


def test_daily_and_weekly_rhythms() -> None:
    city = load_city()
    monday_morning = DAY + timedelta(hours=2)  # 09:00 in Hanoi
    monday_night = DAY + timedelta(hours=17)  # 00:00 in Hanoi
    saturday_morning = DAY + timedelta(days=5, hours=2)
    def count(start: object) -> Counter[str]:
        return Counter(r.channel for r in benign(city, 5, start, 2, sources=["windows", "web", "mqtt"]))  # type: ignore[arg-type]
    day, night, weekend = count(monday_morning), count(monday_night), count(saturday_morning)
    assert day["windows"] > 8 * night["windows"]  # office desktops sleep at night
    assert day["windows"] > 4 * weekend["windows"]  # and at the weekend
    assert day["web"] > 1.5 * night["web"]
    assert abs(day["mqtt"] - night["mqtt"]) < 0.3 * day["mqtt"]  # sensors report at a fixed cadence
    assert activity(monday_morning, "flat") == 1.0


def test_scada_rows_follow_the_tank_physics() -> None:
    records = [r for r in benign(load_city(), 2, DAY, 24, sources=["scada"])]
    header, rows = records[0].line.split(","), [r.line.split(",") for r in records[1:]]
    assert header == ["DATETIME", *TAGS] and len(rows) == 96
    values = np.array([[float(c) for c in row[1:]] for row in rows])
    level, pump = values[:, TAGS.index("L_T1")], values[:, TAGS.index("S_PU1")]
    rising = np.diff(level) > 0
    # the level rises while the pump runs and falls while it is off
    assert rising[pump[1:] == 1].mean() > 0.9 and rising[pump[1:] == 0].mean() < 0.1
    assert level.min() > 0 and level.max() < 6.0
    demand = values[:, TAGS.index("D_CITY")]
    assert demand[28:60].mean() > demand[76:96].mean()  # daytime demand above late evening


def test_bad_settings_are_refused() -> None:
    with pytest.raises(TelemetryError, match="rate web"):
        Rates(web=-1)
    with pytest.raises(TelemetryError, match="unknown telemetry source"):
        benign(load_city(), 1, DAY, 1, sources=["fax"])
