"""Sending mail through an SMTP connector (:mod:`smtplib`), with header injection made impossible.

Header values that come from incidents (the subject) have every line break
and control character turned into a space, so ``a\\r\\nBcc: x`` stays one
subject line; recipients are checked to be plain addresses.  The body is sent
as ``text/plain`` UTF-8 (quoted-printable), so no line of it can end the SMTP
``DATA`` phase or be read as a header.  ``Message-ID`` derives from the
idempotency key, so mail clients can fold a repeated notification.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate

from playbooks.connectors.config import SmtpConfig
from playbooks.connectors.errors import ConnectorError, TransientConnectorError
from playbooks.connectors.http import tls_context
from playbooks.connectors.secrets import SecretStore

ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
GROUP = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
MAX_SUBJECT = 200


def one_line(text: str, limit: int = MAX_SUBJECT) -> str:
    """``text`` as a single header-safe line: control characters and line breaks become spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def recipients(text: str, groups: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Comma- or space-separated plain addresses and recipient-group names; anything else is refused.

    With ``groups`` (the connector's) each group name is expanded to its addresses;
    without, names are only checked for form.
    """
    out: list[str] = []
    bad: list[str] = []
    for item in (a for a in re.split(r"[,\s]+", text.strip()) if a):
        if "@" in item:
            expanded = [item] if ADDRESS.match(item) else []
            if not expanded:
                bad.append(item)
        elif not GROUP.match(item):
            expanded = []
            bad.append(item)
        elif groups is None:
            expanded = [item]
        elif item in groups:
            expanded = list(groups[item])
        else:
            known = ", ".join(groups) or "none"
            raise ConnectorError(f"{item!r} is neither an address nor a recipient group of the connector ({known})")
        out.extend(a for a in expanded if a not in out)
    if bad:
        raise ConnectorError(f"not a plain e-mail address or group name: {', '.join(repr(b) for b in bad[:3])}")
    if not out:
        raise ConnectorError("no recipient address")
    return out


def build_message(config: SmtpConfig, to: list[str], subject: str, body: str, key: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(to)
    message["Subject"] = one_line(subject)
    message["Date"] = formatdate(usegmt=True)
    domain = config.sender.rpartition("@")[2] or "citysoc.local"
    # the key may hold characters a Message-ID may not ('/', '['): its digest is stable and safe
    message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to the SOC
    message.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
    return message


def send_mail(config: SmtpConfig, secrets: SecretStore, message: EmailMessage, to: list[str]) -> dict[str, str]:
    """Deliver ``message``; returns the refused recipients (empty when all were accepted)."""
    where = f"{config.name}: smtp {config.host}:{config.port}"
    context: ssl.SSLContext | None = tls_context(config.ca_file) if config.security != "none" else None
    try:
        smtp: smtplib.SMTP
        if config.security == "ssl":
            smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        with smtp:
            if config.security == "starttls":
                smtp.starttls(context=context)
            if config.username:
                smtp.login(config.username, secrets.get(config.password_secret))
            refused = smtp.send_message(message, from_addr=config.sender, to_addrs=to)
    except smtplib.SMTPAuthenticationError as exc:
        raise ConnectorError(f"{where}: authentication refused ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise ConnectorError(f"{where}: every recipient refused: {', '.join(exc.recipients)}") from exc
    except smtplib.SMTPResponseException as exc:
        error = TransientConnectorError if 400 <= exc.smtp_code < 500 else ConnectorError
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise error(f"{where}: {exc.smtp_code} {text}") from exc
    except ssl.SSLError as exc:  # a certificate that does not verify will not verify on a retry either
        raise ConnectorError(f"{where}: TLS verification failed: {exc}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientConnectorError(f"{where}: {exc}") from exc
    return {addr: f"{code} {text.decode('utf-8', 'replace')}" for addr, (code, text) in refused.items()}
