"""Connector configuration: ``$CITYSOC_HOME/connectors.yml``, validated into typed, immutable configs.

::

    connectors:
      ticketing:                     # the name actions refer to
        type: http                   # http | smtp | mqtt
        url: https://tickets.city.example/api/v2/issues
        auth: {scheme: bearer, secret: ticketing-token}   # bearer | basic (+ username) | header (+ header)
        field_map: {title: summary}  # CitySOC field -> receiver field (HTTP bodies)
      mail:
        type: smtp
        host: smtp.city.example
        port: 587
        security: starttls           # starttls | ssl | none (none only to a loopback host)
        username: citysoc
        password_secret: smtp-password
        sender: soc@city.example
      iot-platform:
        type: mqtt
        host: mqtt.city.example
        port: 8883
        tls: true
        username: citysoc-soar
        password_secret: mqtt-password
        topic_prefix: city/commands

Secrets are referenced by name only (see :mod:`.secrets`).  TLS certificates
are always verified (``ca_file`` names a private CA bundle); plain ``http://``
and unencrypted SMTP/MQTT are allowed only to a loopback address unless the
connector says ``plaintext: true``.  :func:`load_connectors` raises on the first
error, or collects every error (for ``citysoc connectors check``) when given a list.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from playbooks.connectors.errors import ConnectorError
from playbooks.connectors.secrets import check_name

CONFIG_FILE = "connectors.yml"
CONFIG_ENV = "CITYSOC_CONNECTORS"
AUTH_SCHEMES = ("bearer", "basic", "header")
SMTP_SECURITY = ("starttls", "ssl", "none")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HttpAuth:
    scheme: str
    secret: str
    username: str = ""
    header: str = ""


@dataclass(frozen=True)
class HttpConfig:
    name: str
    url: str
    auth: HttpAuth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    ca_file: str = ""
    field_map: Mapping[str, str] = field(default_factory=dict)
    id_field: str = "id"
    plaintext: bool = False
    type: str = "http"

    def secrets(self) -> tuple[str, ...]:
        return (self.auth.secret,) if self.auth else ()


@dataclass(frozen=True)
class SmtpConfig:
    name: str
    host: str
    sender: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password_secret: str = ""
    timeout: float = 10.0
    ca_file: str = ""
    plaintext: bool = False
    #: recipient groups: playbooks name a group (``ot-oncall``), the deployment lists its addresses
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    type: str = "smtp"

    def secrets(self) -> tuple[str, ...]:
        return (self.password_secret,) if self.password_secret else ()


@dataclass(frozen=True)
class MqttConfig:
    name: str
    host: str
    port: int = 8883
    tls: bool = True
    ca_file: str = ""
    username: str = ""
    password_secret: str = ""
    topic_prefix: str = "city/commands"
    client_id: str = "citysoc-playbooks"
    qos: int = 1
    timeout: float = 10.0
    plaintext: bool = False
    type: str = "mqtt"

    def secrets(self) -> tuple[str, ...]:
        return (self.password_secret,) if self.password_secret else ()


ConnectorConfig = HttpConfig | SmtpConfig | MqttConfig
C = TypeVar("C", HttpConfig, SmtpConfig, MqttConfig)


class _Fields:
    """Typed reads of one connector's mapping; every error names the file, the connector and the key."""

    def __init__(self, data: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        self.data, self.where = data, where
        unknown = sorted(set(data) - allowed - {"type"})
        if unknown:
            known = ", ".join(sorted(allowed))
            raise ConnectorError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {known})")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise ConnectorError(f"{self.where}: {key!r} is required and must be a string")
        if any(c in value for c in "\r\n\x00"):
            raise ConnectorError(f"{self.where}: {key!r} must not contain line breaks or NUL")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConnectorError(f"{self.where}: {key!r} must be an integer {low}-{high}")
        return value

    def seconds(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 300:
            raise ConnectorError(f"{self.where}: {key!r} must be a number of seconds in (0, 300]")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise ConnectorError(f"{self.where}: {key!r} must be true or false")
        return value

    def str_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key) or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and not any(c in k + v for c in "\r\n\x00")
            for k, v in value.items()
        ):
            raise ConnectorError(f"{self.where}: {key!r} must map strings to single-line strings")
        return dict(value)

    def secret(self, key: str) -> str:
        name = self.text(key, "")
        if name:
            try:
                check_name(name)
            except ConnectorError as exc:
                raise ConnectorError(f"{self.where}: {key!r}: {exc}") from exc
        return name


def _http(name: str, data: Mapping[str, Any], where: str) -> HttpConfig:
    f = _Fields(data, where, {"url", "auth", "headers", "timeout", "ca_file", "field_map", "id_field", "plaintext"})
    url = f.text("url")
    parts = urllib.parse.urlsplit(url)
    plaintext = f.flag("plaintext", False)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectorError(f"{where}: 'url' must be an http(s) URL with a host, got {url!r}")
    if parts.username or parts.password:
        raise ConnectorError(f"{where}: 'url' must not hold credentials; use 'auth' with a secret")
    if parts.scheme == "http" and not plaintext and not is_loopback(parts.hostname):
        raise ConnectorError(f"{where}: plain http:// to {parts.hostname} needs 'plaintext: true' (prefer https)")
    auth = None
    raw_auth = data.get("auth")
    if raw_auth is not None:
        if not isinstance(raw_auth, Mapping):
            raise ConnectorError(f"{where}: 'auth' must be a mapping")
        a = _Fields(raw_auth, f"{where}: auth", {"scheme", "secret", "username", "header"})
        scheme = a.text("scheme")
        if scheme not in AUTH_SCHEMES:
            raise ConnectorError(f"{where}: auth scheme {scheme!r} is not one of {', '.join(AUTH_SCHEMES)}")
        auth = HttpAuth(scheme, a.secret("secret") or a.text("secret"), a.text("username", ""), a.text("header", ""))
        if scheme == "basic" and not auth.username:
            raise ConnectorError(f"{where}: auth scheme basic needs 'username'")
        if scheme == "header" and not auth.header:
            raise ConnectorError(f"{where}: auth scheme header needs 'header' (e.g. X-Api-Key)")
    return HttpConfig(
        name=name,
        url=url,
        auth=auth,
        headers=f.str_map("headers"),
        timeout=f.seconds("timeout", 10.0),
        ca_file=f.text("ca_file", ""),
        field_map=f.str_map("field_map"),
        id_field=f.text("id_field", "id"),
        plaintext=plaintext,
    )


def _smtp(name: str, data: Mapping[str, Any], where: str) -> SmtpConfig:
    allowed = {"host", "port", "security", "username", "password_secret", "sender", "timeout", "ca_file", "plaintext",
               "groups"}
    f = _Fields(data, where, allowed)
    host = f.text("host")
    security = f.text("security", "starttls")
    if security not in SMTP_SECURITY:
        raise ConnectorError(f"{where}: 'security' must be one of {', '.join(SMTP_SECURITY)}")
    plaintext = f.flag("plaintext", False)
    if security == "none" and not plaintext and not is_loopback(host):
        raise ConnectorError(f"{where}: unencrypted SMTP to {host} needs 'plaintext: true' (prefer starttls)")
    username, password = f.text("username", ""), f.secret("password_secret")
    if bool(username) != bool(password):
        raise ConnectorError(f"{where}: 'username' and 'password_secret' go together")
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, Mapping) or not all(
        isinstance(k, str) and isinstance(v, list) and v and all(isinstance(a, str) and "@" in a for a in v)
        for k, v in raw_groups.items()
    ):
        raise ConnectorError(f"{where}: 'groups' must map a group name to a non-empty list of e-mail addresses")
    return SmtpConfig(
        name=name,
        host=host,
        sender=f.text("sender"),
        port=f.integer("port", 587, 1, 65535),
        security=security,
        username=username,
        password_secret=password,
        timeout=f.seconds("timeout", 10.0),
        ca_file=f.text("ca_file", ""),
        plaintext=plaintext,
        groups={k: tuple(v) for k, v in raw_groups.items()},
    )


def _mqtt(name: str, data: Mapping[str, Any], where: str) -> MqttConfig:
    allowed = {"host", "port", "tls", "ca_file", "username", "password_secret", "topic_prefix", "client_id", "qos",
               "timeout", "plaintext"}
    f = _Fields(data, where, allowed)
    host = f.text("host")
    tls, plaintext = f.flag("tls", True), f.flag("plaintext", False)
    if not tls and not plaintext and not is_loopback(host):
        raise ConnectorError(f"{where}: MQTT without TLS to {host} needs 'plaintext: true' (prefer tls)")
    prefix = f.text("topic_prefix", "city/commands").strip("/")
    if not prefix or any(c in prefix for c in "+#"):
        raise ConnectorError(f"{where}: 'topic_prefix' must be a topic without wildcards")
    username, password = f.text("username", ""), f.secret("password_secret")
    if password and not username:
        raise ConnectorError(f"{where}: 'password_secret' needs 'username'")
    return MqttConfig(
        name=name,
        host=host,
        port=f.integer("port", 8883 if tls else 1883, 1, 65535),
        tls=tls,
        ca_file=f.text("ca_file", ""),
        username=username,
        password_secret=password,
        topic_prefix=prefix,
        client_id=f.text("client_id", "citysoc-playbooks"),
        qos=f.integer("qos", 1, 0, 2),
        timeout=f.seconds("timeout", 10.0),
        plaintext=plaintext,
    )


_BUILDERS: dict[str, Callable[[str, Mapping[str, Any], str], ConnectorConfig]] = {
    "http": _http,
    "smtp": _smtp,
    "mqtt": _mqtt,
}


class Connectors:
    """Connector configs by name."""

    def __init__(self, configs: Mapping[str, ConnectorConfig], source: str = "") -> None:
        self._configs = dict(configs)
        self.source = source

    def names(self) -> list[str]:
        return sorted(self._configs)

    def __iter__(self) -> Iterator[ConnectorConfig]:
        return iter([self._configs[n] for n in self.names()])

    def get(self, name: str, kind: type[C]) -> C:
        config = self._configs.get(name)
        if config is None:
            raise ConnectorError(
                f"no connector {name!r} in {self.source or CONFIG_FILE} "
                f"(configured: {', '.join(self.names()) or 'none'})"
            )
        if not isinstance(config, kind):
            raise ConnectorError(f"connector {name!r} is of type {config.type!r}, this action needs {kind.type!r}")
        return config


def config_path(home: str | Path) -> Path:
    return Path(os.environ.get(CONFIG_ENV) or Path(home) / CONFIG_FILE)


def parse_connectors(data: Any, source: str, errors: list[str] | None = None) -> Connectors:
    if data is None:
        return Connectors({}, source)
    if not isinstance(data, Mapping) or not isinstance(data.get("connectors", {}), Mapping):
        raise ConnectorError(f"{source}: must be a mapping with a 'connectors' mapping of name -> settings")
    configs: dict[str, ConnectorConfig] = {}
    for name, raw in (data.get("connectors") or {}).items():
        where = f"{source}: connector {name!r}"
        try:
            if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
                raise ConnectorError(f"{where}: a name is letters, digits, '-' or '_'")
            if not isinstance(raw, Mapping):
                raise ConnectorError(f"{where}: must be a mapping")
            kind = raw.get("type")
            if kind not in _BUILDERS:
                raise ConnectorError(f"{where}: 'type' must be one of {', '.join(_BUILDERS)}")
            configs[name] = _BUILDERS[kind](name, raw, where)
        except ConnectorError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return Connectors(configs, source)


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[float, Connectors]] = {}


def load_connectors(home: str | Path, errors: list[str] | None = None) -> Connectors:
    """The connectors of ``home`` (or ``$CITYSOC_CONNECTORS``); re-read when the file changes."""
    path = config_path(home)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return Connectors({}, str(path))
    if errors is None:
        with _cache_lock:
            hit = _cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConnectorError(f"{path}: cannot read the connectors file: {exc}") from exc
    connectors = parse_connectors(data, str(path), errors)
    if errors is None:
        with _cache_lock:
            _cache[path] = (mtime, connectors)
    return connectors
