"""In the browser: log in with password and TOTP, enrol in MFA from the QR-code page, refuse a replayed code."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from console import mfa
from tests.console.browser import LiveConsole, login, new_trapped_page


def test_log_in_with_password_and_totp(live_console: LiveConsole, page: Any) -> None:
    analyst = live_console.add_user("ana", ("analyst",), mfa_enabled=True)
    login(page, live_console, analyst)
    assert page.url == f"{live_console.url}/incidents"
    assert page.inner_text(".who").startswith("ana")
    page.xss.assert_clean(page)


def test_a_used_code_is_refused_in_a_second_browser(live_console: LiveConsole, page: Any, browser: Any) -> None:
    analyst = live_console.add_user("ana", ("analyst",), mfa_enabled=True)
    login(page, live_console, analyst)
    other = new_trapped_page(browser)
    try:
        other.goto(f"{live_console.url}/login")
        other.fill("#username", "ana")
        other.fill("#password", analyst.password)
        other.click("button[type=submit]")
        other.wait_for_url(f"{live_console.url}/login/mfa")
        other.fill("#code", analyst.code())  # the code the first browser used
        other.click("button[type=submit]")
        assert other.url == f"{live_console.url}/login/mfa"
        assert "Wrong or already used code" in other.inner_text(".flash-error")
    finally:
        other.context.close()


def test_enrol_from_the_set_up_page(live_console: LiveConsole, page: Any) -> None:
    live_console.app.config["MFA_REQUIRED_ROLES"] = ["responder"]
    responder = live_console.add_user("resp", ("responder",))
    login(page, live_console, responder)
    assert page.url == f"{live_console.url}/account/mfa"  # required: nothing else until enrolled
    page.goto(f"{live_console.url}/incidents")
    assert page.url == f"{live_console.url}/account/mfa"
    assert page.evaluate("document.querySelector('img.qr').naturalWidth") > 0  # the SVG QR code renders under CSP
    secret = page.inner_text("#totp-secret").strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert f"secret={secret}" in page.inner_text("#totp-uri")
    page.fill("#code", mfa.totp(mfa.secret_key(secret), datetime.now(UTC) - timedelta(seconds=30)))
    page.click("form[action='/account/mfa'] button[type=submit]")
    page.wait_for_url(f"{live_console.url}/incidents")
    assert live_console.store.get_user("resp").mfa_enabled
    page.xss.assert_clean(page)
