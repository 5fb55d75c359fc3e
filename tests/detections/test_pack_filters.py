"""Sigma filters (meta filters) exclude events from the rules they name, with Sigma field names mapped."""

from __future__ import annotations

from pathlib import Path

from detections.pack import load_rules
from tests.helpers import event

RULE = """
title: Whoami Execution
id: 5f3c4b2a-1d0e-4c9b-8a7f-6e5d4c3b2a10
name: whoami_execution
status: test
logsource: {product: windows, category: process_creation}
detection:
  selection: {Image|endswith: '\\\\whoami.exe'}
  condition: selection
level: low
"""

OTHER = RULE.replace("5f3c4b2a-1d0e-4c9b-8a7f-6e5d4c3b2a10", "5f3c4b2a-1d0e-4c9b-8a7f-6e5d4c3b2a11").replace(
    "whoami_execution", "whoami_other"
).replace("Whoami Execution", "Whoami Other")

FILTER = """
title: Monitoring agent runs whoami
id: 7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d
logsource: {product: windows, category: process_creation}
filter:
  rules: [5f3c4b2a-1d0e-4c9b-8a7f-6e5d4c3b2a10]
  selection: {ParentImage|endswith: '\\\\monitoring-agent.exe'}
  condition: not selection
"""


def _process(parent: str) -> dict[str, str]:
    return {
        "event.dataset": "windows.sysmon",
        "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
        "winlog.event_id": "1",
        "process.executable": "C:\\Windows\\System32\\whoami.exe",
        "process.parent.executable": parent,
    }


def test_filter_excludes_only_in_the_rules_it_names(tmp_path: Path) -> None:
    (tmp_path / "rule.yml").write_text(RULE, encoding="utf-8")
    (tmp_path / "other.yml").write_text(OTHER, encoding="utf-8")
    (tmp_path / "filter.yml").write_text(FILTER, encoding="utf-8")
    loaded = load_rules([tmp_path])
    assert loaded.filters == {"Monitoring agent runs whoami": ("5f3c4b2a-1d0e-4c9b-8a7f-6e5d4c3b2a10",)}
    assert loaded.counts() == {"loaded": 3, "unsupported": 0, "invalid": 0}

    excluded = event(0, _process("C:\\Program Files\\Agent\\monitoring-agent.exe"))
    assert [r.title for r in loaded.ruleset.match(excluded)] == ["Whoami Other"]
    normal = event(1, _process("C:\\Windows\\explorer.exe"))
    assert sorted(r.title for r in loaded.ruleset.match(normal)) == ["Whoami Execution", "Whoami Other"]


def test_without_the_filter_both_rules_fire(tmp_path: Path) -> None:
    (tmp_path / "rule.yml").write_text(RULE, encoding="utf-8")
    loaded = load_rules([tmp_path])
    assert loaded.ruleset.match(event(0, _process("C:\\Program Files\\Agent\\monitoring-agent.exe")))
