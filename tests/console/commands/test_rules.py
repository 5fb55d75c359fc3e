"""``citysoc rules check / convert / retro-hunt`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from console.cli import cli
from store.sqlite import SQLiteStore
from tests.helpers import event

GOOD = """
title: Camera Firmware Update From Outside
id: 2f9d1c7a-5b3e-4e8f-a1d2-c3b4a5e6f701
status: test
logsource: {product: citysoc, service: camera}
detection:
  selection: {event.action: firmware_update, source.ip|cidr: 198.51.100.0/24}
  condition: selection
level: high
"""

UNSUPPORTED = """
title: Uses a placeholder
id: 2f9d1c7a-5b3e-4e8f-a1d2-c3b4a5e6f702
logsource: {product: citysoc, service: camera}
detection:
  selection: {user.name|expand: '%admins%'}
  condition: selection
"""

INVALID = """title: Broken condition
id: 2f9d1c7a-5b3e-4e8f-a1d2-c3b4a5e6f703
logsource: {product: citysoc, service: camera}
detection:
  selection: {event.action: x}
  condition: selection and missing_selection
"""


def _pack(folder: Path, *texts: str) -> Path:
    for index, text in enumerate(texts):
        (folder / f"rule{index}.yml").write_text(text, encoding="utf-8")
    return folder


def test_check_reports_each_problem_with_file_line_and_ends_with_the_counts(tmp_path: Path) -> None:
    _pack(tmp_path, GOOD, UNSUPPORTED, INVALID)
    result = CliRunner().invoke(cli, ["rules", "check", str(tmp_path), "--json"])
    assert result.exit_code == 1  # an invalid rule fails CI
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[-1] == {"loaded": 1, "unsupported": 1, "invalid": 1}
    problems = {line["status"]: line for line in lines[:-1]}
    assert problems["unsupported"]["path"].endswith("rule1.yml") and "admins" in problems["unsupported"]["reason"]
    assert problems["invalid"]["path"].endswith("rule2.yml") and problems["invalid"]["line"]


def test_check_of_a_clean_pack_exits_0(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["rules", "check", str(_pack(tmp_path, GOOD)), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output.splitlines()[-1]) == {"loaded": 1, "unsupported": 0, "invalid": 0}


def test_convert_to_each_target(tmp_path: Path) -> None:
    _pack(tmp_path, GOOD)
    for target, expected in [("sqlite", "SELECT"), ("lucene", "event.action:firmware_update"),
                             ("esql", "from "), ("eql", "any where")]:
        result = CliRunner().invoke(cli, ["rules", "convert", "--target", target, str(tmp_path)])
        assert result.exit_code == 0, result.output
        (line,) = [json.loads(x) for x in result.stdout.splitlines()]
        assert line["error"] is None and expected in line["queries"][0], (target, line)


def test_retro_hunt_over_the_embedded_store_confirms_sql_candidates(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    _pack(rules, GOOD)
    db = tmp_path / "citysoc.db"
    store = SQLiteStore(db)
    camera = {"event.dataset": "camera.platform", "event.action": "FIRMWARE_UPDATE"}
    store.put_events([
        event(0, {**camera, "source.ip": "198.51.100.20"}, event_id="hit"),
        event(1, {**camera, "source.ip": "10.1.1.1"}, event_id="inside"),
        # same fields on another logsource: the SQL query selects it, the routing check drops it
        event(2, {"event.dataset": "iot.mqtt", "event.action": "firmware_update", "source.ip": "198.51.100.21"},
              event_id="mqtt"),
    ])
    store.close()
    result = CliRunner().invoke(cli, ["rules", "retro-hunt", "--db", str(db), str(rules)])
    assert result.exit_code == 0, result.output
    matches = [json.loads(x) for x in result.stdout.splitlines()]
    assert [m["event"]["event"]["id"] for m in matches] == ["hit"]
    summary = json.loads(result.stderr.splitlines()[-1])
    assert summary["candidates"] == 2 and summary["matches"] == 1
