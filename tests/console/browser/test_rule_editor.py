"""In the browser: a detection engineer validates a rule while typing and tests it on pasted sample events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.console.browser import PAYLOADS, LiveConsole, login

DATA = Path(__file__).resolve().parent.parent.parent / "data" / "detections" / "rule_admin"
RULE_TEXT = (DATA / "camera_admin_login.yml").read_text(encoding="utf-8")
SAMPLES = (DATA / "sample_events.ndjson").read_text(encoding="utf-8")


@pytest.fixture
def engineer_console(live_console: LiveConsole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LiveConsole:
    monkeypatch.setenv("CITYSOC_HOME", str(tmp_path / "home"))
    pack = tmp_path / "pack"
    pack.mkdir()
    shutil.copy(DATA / "camera_admin_login.yml", pack)
    live_console.app.config["RULE_PATHS"] = [str(pack)]
    return live_console


def test_validate_while_typing_then_test_on_a_hostile_sample(engineer_console: LiveConsole, page: Any) -> None:
    engineer = engineer_console.add_user("eng", ("engineer",), mfa_enabled=True)
    login(page, engineer_console, engineer)
    page.goto(f"{engineer_console.url}/rules/editor")
    # a typo in a modifier: rules.js asks the validate endpoint and lists the error with its line
    broken = RULE_TEXT.replace("source.ip|cidr:", "source.ip|cidrx:")
    line = broken.splitlines().index("        source.ip|cidrx: 10.20.0.0/16") + 1
    page.fill("#rule-text", broken)
    page.wait_for_selector("#live-problems .problem-error")
    assert page.inner_text("#live-problems .problem-error").startswith(f"line {line}: error:")
    page.fill("#rule-text", RULE_TEXT)
    page.wait_for_selector("#live-problems .live-ok")

    # test on pasted events whose fields carry XSS payloads: one matches, nothing runs
    events = [json.loads(line) for line in SAMPLES.splitlines()]
    for event, payload in zip(events, PAYLOADS, strict=False):
        event["host"]["name"] = payload
        event["message"] = payload
    page.check("input[name=source][value=sample]")
    page.fill("textarea[name=sample]", "\n".join(json.dumps(e) for e in events))
    page.click("#test-rule")
    page.wait_for_selector("#test-result")
    assert page.inner_text("#match-count") == "1"
    assert "203.0.113.7" in page.inner_text("#test-result")
    assert PAYLOADS[0] in page.inner_text("#test-result")  # shown as text
    page.xss.assert_clean(page)
