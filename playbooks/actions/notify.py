"""Telling people and systems: e-mail through an SMTP connector, JSON webhooks."""

from __future__ import annotations

import urllib.parse
from typing import Any

from playbooks.actions import support
from playbooks.actions.base import ActionContext, ActionError, Impact, action
from playbooks.actions.support import incident_brief, now, secrets, simulated, translated
from playbooks.connectors import http, smtp
from playbooks.connectors.config import HttpConfig, SmtpConfig, is_loopback

NOTIFICATION_SCHEMA = "citysoc.notification/1"


@action("notify_webhook", Impact.NOTIFY)
def notify_webhook(
    ctx: ActionContext, message: str, url: str = "", connector: str = "", timeout: float = 10.0
) -> dict[str, Any]:
    """POST a JSON notification to a webhook: a literal ``url``, or an HTTP connector (with its auth) by name.

    Body: ``{"schema": "citysoc.notification/1", "incident_id", "run_id", "message", "sent_at"}``;
    header ``Idempotency-Key``.
    """
    if bool(url) == bool(connector):
        raise ActionError("notify_webhook: give exactly one of 'url' and 'connector'")
    body = {
        "schema": NOTIFICATION_SCHEMA,
        "incident_id": ctx.incident_id,
        "run_id": ctx.run_id,
        "message": message,
        "sent_at": now(),
    }
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise ActionError(f"notify_webhook: only http(s) URLs with a host and no credentials, got {url!r}")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ActionError(f"notify_webhook: plain http:// to {parts.hostname}; use https or a connector")
        if not 0 < timeout <= 300:
            raise ActionError("notify_webhook: timeout must be in (0, 300] seconds")
        config = HttpConfig(name="webhook", url=url, timeout=timeout)
    else:
        config = support.connector(ctx, connector, HttpConfig)
    if ctx.drill:
        return simulated(method="POST", url=config.url, body=body)
    with translated("notify_webhook"):
        response = http.request_json(config, secrets(ctx), "POST", body, ctx.idempotency_key)
    return {"url": config.url, "status": response.status}


@action("notify_email", Impact.NOTIFY)
def notify_email(ctx: ActionContext, to: str, subject: str, body: str, connector: str = "mail") -> dict[str, Any]:
    """Send a plain-text e-mail through an SMTP connector.

    ``to`` is a comma-separated list of plain addresses or recipient groups of the connector.  The subject is made
    one header-safe line (line breaks and control characters become spaces);
    the incident id and severity are appended to the body.
    """
    with translated("notify_email"):
        smtp.recipients(to)  # plain addresses are checked before the connector is looked up
    config = support.connector(ctx, connector, SmtpConfig)
    with translated("notify_email"):
        recipients = smtp.recipients(to, config.groups)
    brief = incident_brief(ctx)
    footer = f"\n\n-- \nCitySOC incident {brief['id']} ({brief['severity']}), run {ctx.run_id}\n" if brief else ""
    message = smtp.build_message(config, recipients, subject, body + footer, ctx.idempotency_key)
    if ctx.drill:
        return simulated(to=recipients, subject=message["Subject"], via=f"{config.host}:{config.port}")
    with translated("notify_email"):
        refused = smtp.send_mail(config, secrets(ctx), message, recipients)
    return {"to": recipients, "refused": refused, "message_id": message["Message-ID"]}
