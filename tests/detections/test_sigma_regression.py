"""SigmaHQ's regression samples each fire their own rule through ``citysoc hunt`` (.evtx and .json)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import REPO, shared

_ID = re.compile(r"^id:\s*([0-9a-fA-F-]{36})\s*$", re.MULTILINE)


def _rule_files(packs: Path) -> dict[str, Path]:
    """Rule id -> rule file over the SigmaHQ packs (samples name their rule by id; files move)."""
    out: dict[str, Path] = {}
    for path in packs.rglob("*.yml"):
        found = _ID.search(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            out[found.group(1).lower()] = path
    return out


def test_every_regression_sample_fires_its_own_rule_through_hunt() -> None:
    regression = shared("sigma-regression", "regression_data")
    rules_by_id = _rule_files(shared("sigma"))
    expected: dict[str, str] = {}  # sample file -> its rule id
    rule_files: set[Path] = set()
    for info in sorted(regression.rglob("info.yml")):
        rule_id = str(yaml.safe_load(info.read_text(encoding="utf-8"))["rule_metadata"][0]["id"]).lower()
        for sample in info.parent.iterdir():
            if sample.suffix in (".evtx", ".json") and rule_id in rules_by_id:
                expected[str(sample)] = rule_id
                rule_files.add(rules_by_id[rule_id])
    evtx = [s for s in expected if s.endswith(".evtx")]
    assert len(evtx) >= 99 and len(expected) - len(evtx) >= 99  # both layouts of every Windows sample

    command = [sys.executable, "-m", "console.cli", "hunt"]
    for rule_file in sorted(rule_files):
        command += ["--rules", str(rule_file)]
    proc = subprocess.run(
        [*command, str(regression)], capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fired: dict[str, set[str]] = {}
    for line in proc.stdout.splitlines():
        match = json.loads(line)
        fired.setdefault(match["log"]["file"]["path"], set()).add(match["rule"]["id"].lower())
        assert match["event"]["winlog"]["channel"]
    missed = sorted(sample for sample, rule_id in expected.items() if rule_id not in fired.get(sample, set()))
    assert missed == []
