"""``citysoc hunt`` over collector-format files, through the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from lab import scenario
from tests.helpers import REPO, T0


def _write_lab_files(folder: Path) -> None:
    for emission in scenario.benign(7, T0) + scenario.attack(7, T0 + timedelta(minutes=11)):
        if emission.channel.startswith("syslog"):
            continue
        with (folder / emission.channel).open("a", encoding="utf-8") as fh:
            fh.write(emission.line + "\n")


def test_hunt_prints_one_ndjson_line_per_match_with_its_file(tmp_path: Path) -> None:
    _write_lab_files(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "console.cli", "hunt", "--rules", str(REPO / "detections" / "rules"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    titles = [m["rule"]["title"] for m in lines]
    assert titles.count("Camera Platform Login Failure") == 8
    assert titles.count("Camera Credential Brute Force") == 1
    assert titles.count("Camera Login With a Factory Default Account") == 1
    assert titles.count("Modbus Write From a Host Outside the Engineering Network") == 1
    assert len(lines) == 11  # nothing on the benign traffic
    modbus = next(m for m in lines if m["rule"]["title"].startswith("Modbus"))
    assert modbus["log"]["file"]["path"] == str(tmp_path / scenario.MODBUS_FILE)
    assert modbus["event"]["source"]["ip"] == scenario.ATTACKER_IP
    assert modbus["rule"]["level"] == "high" and modbus["rule"]["id"]
    brute = next(m for m in lines if m["rule"]["title"] == "Camera Credential Brute Force")
    assert len(brute["correlation"]["event_ids"]) == 5
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    assert summary["matches"] == 11 and summary["unparsed"] == 1  # the deliberately malformed line
