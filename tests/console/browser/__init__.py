"""Helpers of the browser tests: accounts, the XSS trap, login; the fixtures are in ``conftest.py``."""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from console import mfa
from console.auth import create_user
from console.services import store_of
from store.base import Store
from tests.console import PASSWORD

CHROMIUM = "/usr/bin/chromium"
#: Payloads that mark ``window.__pwned`` (and open a dialog) when they run.
PAYLOADS: tuple[str, ...] = (
    "<img src=x onerror=\"window.__pwned='img';alert(1)\">",
    "<script>window.__pwned='script';alert(2)</script>",
    "javascript:window.__pwned='js';alert(3)//",
    "\"><svg onload=\"window.__pwned='svg';alert(4)\">",
    "'><details open ontoggle=\"window.__pwned='toggle';alert(5)\">",
)

_TRAP_SCRIPT = """
window.__pwned = undefined;
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || e.sample || '')), true);
"""


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    roles: tuple[str, ...]
    totp_secret: str | None = None

    def code(self, at: datetime | None = None) -> str:
        """The TOTP code for now (or ``at``); the account must have MFA."""
        assert self.totp_secret is not None, f"{self.name} has no MFA"
        return mfa.totp(mfa.secret_key(self.totp_secret), at or datetime.now(UTC))


@dataclass
class LiveConsole:
    url: str
    app: Flask
    assets_path: Path

    @property
    def store(self) -> Store:
        return store_of(self.app)

    def add_user(
        self, name: str, roles: Sequence[str], agencies: Sequence[str] = (), mfa_enabled: bool = False,
        password: str = PASSWORD,
    ) -> Account:
        user = create_user(self.store, name, password, roles, agencies=agencies)
        if not mfa_enabled:
            return Account(name, password, tuple(roles))
        secret = mfa.new_secret()
        key = mfa.encryption_key(str(self.app.config["SECRET_KEY"]))
        self.store.put_user(replace(user, mfa_enabled=True, totp_secret=mfa.encrypt_secret(secret, key, name)))
        return Account(name, password, tuple(roles), secret)


@dataclass
class XSSTrap:
    """What hostile content managed to do in the page: dialogs, marks, CSP violations, console errors."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def findings(self, page: Any) -> list[str]:
        found = [f"dialog: {d}" for d in self.dialogs]
        pwned = page.evaluate("window.__pwned")
        if pwned is not None:
            found.append(f"payload ran: {pwned}")
        found += [f"CSP violation: {v}" for v in page.evaluate("window.__csp || []")]
        # markup a payload would create if it reached the DOM unescaped (the console itself has none of it)
        injected = page.evaluate("""() => Array.from(document.querySelectorAll(
            'img[src="x"], svg[onload], details[ontoggle], [onerror], [onload], [onclick], script:not([src]), '
            + 'a[href^="javascript:" i], iframe')).map((e) => e.outerHTML.slice(0, 120))""")
        found += [f"injected element: {html}" for html in injected]
        found += [f"console: {e}" for e in self.console_errors if "Content Security Policy" in e]
        return found

    def assert_clean(self, page: Any, where: str = "") -> None:
        findings = self.findings(page)
        assert findings == [], f"{where or page.url}: " + "; ".join(findings)


def new_trapped_page(browser: Any, bypass_csp: bool = False) -> Any:
    """A page in a new context with the XSS trap installed (``page.xss``)."""
    context = browser.new_context(bypass_csp=bypass_csp)
    context.set_default_timeout(10_000)
    context.add_init_script(_TRAP_SCRIPT)
    page = context.new_page()
    trap = XSSTrap()
    page.on("dialog", lambda dialog: (trap.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda msg: trap.console_errors.append(msg.text) if msg.type == "error" else None)
    page.xss = trap
    return page


def login(page: Any, console: LiveConsole, account: Account) -> None:
    """Log in through the form, and the TOTP step when the account has MFA."""
    page.goto(f"{console.url}/login")
    page.fill("#username", account.name)
    page.fill("#password", account.password)
    page.click("button[type=submit]")
    if account.totp_secret is not None:
        page.wait_for_url(f"{console.url}/login/mfa")
        page.fill("#code", account.code())
        page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url, f"login of {account.name} failed: still on {page.url}"


def recent(minutes: float = 5) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)

