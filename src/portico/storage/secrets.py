"""Encryption at rest for provider credentials (virtual keys): Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

The key comes from `$PORTICO_SECRET_KEY` (a Fernet key, or any passphrase, which is stretched with scrypt);
without it, one is generated once under `$PORTICO_HOME/secret.key` (mode 0600). Secrets are only ever shown masked.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SALT = b"portico-secret-box-v1"


class SecretBox:
    """`cryptography` is loaded on first use: a gateway without virtual keys never pays its ~7 MiB."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cipher: Any = None

    @property
    def _fernet(self) -> Any:
        if self._cipher is None:
            from cryptography.fernet import Fernet

            self._cipher = Fernet(self._key)
        return self._cipher

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, home: Path | None = None) -> SecretBox:
        env = os.environ if env is None else env
        given = env.get("PORTICO_SECRET_KEY")
        if given:
            return cls(_as_fernet_key(given))
        path = (home or Path(env.get("PORTICO_HOME") or ".portico")) / "secret.key"
        if path.exists():
            return cls(path.read_bytes().strip())
        return cls(_create_key(path))

    def encrypt(self, secret: str) -> str:
        return str(self._fernet.encrypt(secret.encode()).decode())

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return str(self._fernet.decrypt(token.encode()).decode())
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this PORTICO_SECRET_KEY") from exc


def _create_key(path: Path) -> bytes:
    """A new key at `path`, or the one another process put there first.

    `serve --workers N` starts N processes that may all find no key on a first start. Each writes its key to a
    private file (mode 0600) and links it into place: the link is atomic and never replaces an existing file, so
    exactly one key wins, whole, and every loser reads that one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = base64.urlsafe_b64encode(os.urandom(32))  # what Fernet.generate_key() does
    fd, staged = tempfile.mkstemp(dir=path.parent, prefix=".secret.key.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        try:
            os.link(staged, path)
        except FileExistsError:
            return path.read_bytes().strip()
    finally:
        os.unlink(staged)
    return key


def mask(secret: str | None) -> str | None:
    """`sk-abc…wxyz`: enough to recognise a key, never enough to use it."""
    if not secret:
        return None
    if len(secret) <= 8:
        return "…" + secret[-2:]
    return f"{secret[:3]}…{secret[-4:]}"


def _as_fernet_key(value: str) -> bytes:
    raw = value.encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    derived = Scrypt(salt=_SALT, length=32, n=2**14, r=8, p=1).derive(raw)
    return base64.urlsafe_b64encode(derived)
