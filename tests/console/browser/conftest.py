"""Browser-test harness: the real console on 127.0.0.1 driven by Playwright with Debian's Chromium.

Fixtures (use them from any test module under ``tests/console/browser/``):

``live_console`` (function scope) -> :class:`LiveConsole`
    A fresh console app over a new SQLite store in ``tmp_path``, served by a
    threaded werkzeug server on a free 127.0.0.1 port, stopped after the test.
    ``live_console.url`` is the base URL, ``.store`` the store (seed it
    directly: ``seed_incident(live_console.store)`` from ``tests.console``,
    ``put_events``, ...), ``.app`` the Flask app (its config has
    ``ASSETS_PATH`` = ``.assets_path``, an asset register you may write).
    ``live_console.add_user(name, roles, agencies=(), mfa_enabled=False)`` creates a
    user and returns :class:`Account` (name, password and, with MFA, the
    TOTP secret; ``account.code()`` is the current TOTP code).

``browser`` (session scope)
    Chromium launched by Playwright from ``/usr/bin/chromium`` (Playwright
    cannot download browsers here).  The tests are skipped with the reason
    when that binary or the playwright package is absent; ``./scripts/test.sh``
    installs Chromium with apt-get.

``page`` (function scope) -> Playwright ``Page`` in a new browser context, with
    an :class:`XSSTrap` installed: ``page.xss`` records dialogs (``alert``),
    ``window.__pwned`` marks, CSP violations and console errors.  Call
    ``page.xss.assert_clean(page)`` after visiting pages with hostile data.

Helpers in ``tests.console.browser``: ``login(page, console, account)`` logs in
through the form (and the TOTP step when the account has MFA) and ends on the
page after login; ``PAYLOADS`` are XSS payloads that set ``window.__pwned``;
``new_trapped_page(browser, bypass_csp=True)`` gives a page whose CSP is
off, to prove escaping alone holds.

Typical test::

    from tests.console import seed_incident
    from tests.console.browser import login

    def test_triage(live_console, page):
        seeded = seed_incident(live_console.store)
        analyst = live_console.add_user("ana", ("analyst",), mfa_enabled=True)
        login(page, live_console, analyst)
        page.goto(f"{live_console.url}/incidents/{seeded.incident.id}")
        ...
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from console import auth
from tests.console import console_app
from tests.console.browser import CHROMIUM, LiveConsole, new_trapped_page
from tests.services import free_port


@pytest.fixture
def live_console(tmp_path: Path) -> Iterator[LiveConsole]:
    assets = tmp_path / "assets.json"
    assets.write_text("[]", encoding="utf-8")
    with console_app(tmp_path, ASSETS_PATH=str(assets), TESTING=False) as app:
        port = free_port()
        server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="live-console", daemon=True)
        thread.start()
        try:
            yield LiveConsole(f"http://127.0.0.1:{port}", app, assets)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt costs ~0.3 s per hash on the shared test machine; the browser tests are not about the hash
    monkeypatch.setattr(auth, "HASH_METHOD", "pbkdf2:sha256:1000")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (./scripts/test.sh does, as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = new_trapped_page(browser)
    try:
        yield page
    finally:
        page.context.close()
