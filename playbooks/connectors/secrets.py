"""Connector secrets, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

Secrets live in ``$CITYSOC_HOME/secrets.json`` as ``{name: fernet token}``;
the key comes from the environment variable ``CITYSOC_SECRETS_KEY`` (a Fernet
key) or from ``$CITYSOC_HOME/secrets.key``, created with mode 0600 on first
use and refused when other users may read it.  Values are written only by
``citysoc connectors set-secret NAME`` (from stdin, never an argument, so they
stay out of shell history and process lists) and read only by connectors;
each value read is registered for redaction.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from playbooks.connectors.errors import ConnectorError
from playbooks.connectors.redact import remember

KEY_ENV = "CITYSOC_SECRETS_KEY"
KEY_FILE = "secrets.key"
SECRETS_FILE = "secrets.json"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ConnectorError(
            f"secret name {name!r} must be 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return name


def _load_key(home: Path, create: bool) -> bytes | None:
    env = os.environ.get(KEY_ENV)
    if env:
        return env.strip().encode("ascii")
    path = home / KEY_FILE
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not create:
            return None
        home.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return _load_key(home, create)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConnectorError(f"{path}: other users may read the secrets key (mode {mode & 0o777:o}); chmod 600 it")
    return path.read_bytes().strip()


class SecretStore:
    """Named secrets under ``home``; see the module docstring for where the key comes from."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)
        self.path = self.home / SECRETS_FILE

    def _fernet(self, create: bool) -> Fernet | None:
        key = _load_key(self.home, create)
        if key is None:
            return None
        try:
            return Fernet(key)
        except ValueError as exc:
            source = f"${KEY_ENV}" if os.environ.get(KEY_ENV) else str(self.home / KEY_FILE)
            raise ConnectorError(f"{source}: not a valid Fernet key (32 url-safe base64-encoded bytes)") from exc

    def _tokens(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConnectorError(f"{self.path}: cannot read the secrets file: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConnectorError(f"{self.path}: must be a JSON object of secret name -> token")
        return data

    def names(self) -> list[str]:
        return sorted(self._tokens())

    def __contains__(self, name: str) -> bool:
        return name in self._tokens()

    def set(self, name: str, value: str) -> None:
        check_name(name)
        if not value:
            raise ConnectorError(f"secret {name!r}: the value is empty")
        fernet = self._fernet(create=True)
        assert fernet is not None
        tokens = self._tokens()
        tokens[name] = fernet.encrypt(value.encode("utf-8")).decode("ascii")
        self._write(tokens)

    def delete(self, name: str) -> bool:
        tokens = self._tokens()
        if tokens.pop(name, None) is None:
            return False
        self._write(tokens)
        return True

    def get(self, name: str) -> str:
        """The decrypted value; registered for redaction before it is returned."""
        token = self._tokens().get(name)
        if token is None:
            raise ConnectorError(
                f"secret {name!r} is not set in {self.path}; set it with `citysoc connectors set-secret {name}`"
            )
        fernet = self._fernet(create=False)
        if fernet is None:
            raise ConnectorError(f"secret {name!r}: no key (${KEY_ENV} or {self.home / KEY_FILE})")
        try:
            value = fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ConnectorError(f"secret {name!r} in {self.path} does not decrypt with the current key") from exc
        remember(name, value)
        return value

    def _write(self, tokens: dict[str, str]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        # write a private temporary file and rename it, so a crash never leaves a half-written secrets file
        fd, tmp = tempfile.mkstemp(prefix=".secrets.", dir=self.home)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(tokens, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
