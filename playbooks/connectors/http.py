"""The HTTP client of the connectors: JSON in and out, timeouts, verified TLS, no redirects, idempotency keys.

Built on :mod:`urllib.request`.  Every request carries ``Idempotency-Key`` so a
receiver can drop the duplicate of a retried or redelivered step.  Redirects
are refused (a redirect could carry credentials to another host); answers are
read up to :data:`MAX_BODY` bytes.  Timeouts, refused connections, 429 and 5xx
raise :class:`TransientConnectorError` (worth retrying), other 4xx
:class:`ConnectorError`.  Header values never come from event data: bodies
are JSON and URL path segments are percent-encoded by the caller's
:func:`path_segment`.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

from playbooks.connectors.config import HttpConfig
from playbooks.connectors.errors import ConnectorError, TransientConnectorError
from playbooks.connectors.redact import redact, remember
from playbooks.connectors.secrets import SecretStore

MAX_BODY = 1 << 20
USER_AGENT = "CitySOC-playbooks/1"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ConnectorError(f"answer is not JSON: {exc}") from exc


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Message,
                         newurl: str) -> None:
        raise ConnectorError(f"{req.full_url}: answered {code} redirect to {newurl}; redirects are not followed")


def path_segment(value: str) -> str:
    """``value`` as one percent-encoded URL path segment ('/', '?', '#', '..' cannot escape it)."""
    if value in ("", ".", ".."):
        raise ConnectorError(f"{value!r} cannot be a URL path segment")
    return urllib.parse.quote(value, safe="")


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Certificate and host-name verification always on; ``ca_file`` adds a private CA."""
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectorError(f"CA file {ca_file!r}: {exc}") from exc


def auth_headers(config: HttpConfig, secrets: SecretStore) -> dict[str, str]:
    if config.auth is None:
        return {}
    value = secrets.get(config.auth.secret)
    if config.auth.scheme == "bearer":
        return {"Authorization": f"Bearer {value}"}
    if config.auth.scheme == "basic":
        token = base64.b64encode(f"{config.auth.username}:{value}".encode()).decode("ascii")
        remember(config.auth.secret, token)  # the encoded form is as secret as the password
        return {"Authorization": f"Basic {token}"}
    return {config.auth.header: value}


def request_json(
    config: HttpConfig,
    secrets: SecretStore,
    method: str,
    body: Mapping[str, Any] | None,
    idempotency_key: str,
    url: str | None = None,
) -> HttpResponse:
    """Send ``body`` as JSON to ``url`` (default: the connector's URL) and return the answer."""
    target = url or config.url
    data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        **config.headers,
        **auth_headers(config, secrets),
        "Idempotency-Key": idempotency_key,
    }
    if data is not None:
        headers["Content-Type"] = "application/json; charset=utf-8"
    return send(method, target, data, headers, config.timeout, config.ca_file, config.name)


def send(
    method: str, url: str, data: bytes | None, headers: Mapping[str, str], timeout: float, ca_file: str = "",
    name: str = "",
) -> HttpResponse:
    where = f"{name or 'http'}: {method} {url}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectorError(f"{where}: only http(s) URLs with a host are allowed")
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if parts.scheme == "https":
        handlers.append(urllib.request.HTTPSHandler(context=tls_context(ca_file)))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)  # noqa: S310 - checked
    try:
        with opener.open(request, timeout=timeout) as response:
            return HttpResponse(response.status, response.read(MAX_BODY), response.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        snippet = redact(exc.read(300).decode("utf-8", "replace"))
        exc.close()
        error = TransientConnectorError if exc.code == 429 or exc.code >= 500 else ConnectorError
        raise error(f"{where}: HTTP {exc.code} {exc.reason}: {snippet}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError | ssl.CertificateError):
            raise ConnectorError(f"{where}: TLS verification failed: {reason}") from exc
        raise TransientConnectorError(f"{where}: {reason}") from exc
    except TimeoutError as exc:
        raise TransientConnectorError(f"{where}: no answer within {timeout:g} s") from exc
    except OSError as exc:
        raise TransientConnectorError(f"{where}: {exc}") from exc
    except ValueError as exc:  # http.client refuses header values with line breaks
        raise ConnectorError(f"{where}: {exc}") from exc
