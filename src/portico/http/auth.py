"""Client authentication: a gateway key as `Authorization: Bearer` or `x-portkey-api-key` (CHECKLIST AU-11, AMB-19).

A valid `x-portkey-api-key` wins, so the Portkey SDK's placeholder bearer never breaks a request. Keys are
compared in constant time. An empty key list leaves the gateway open.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from portico.core.errors import AuthenticationFailed


class Authenticator:
    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in keys if k)

    @property
    def open(self) -> bool:
        return not self._keys

    def client_key(self, headers: Mapping[bytes, bytes]) -> str | None:
        """The presented gateway key (None when the gateway is open), or AuthenticationFailed.

        Takes the request's raw ASGI headers (lower-case names, latin-1 values): the keys are compared as the
        bytes they arrived as, and only the one accepted is decoded."""
        if not self._keys:
            return None
        portkey = headers.get(b"x-portkey-api-key")
        if portkey and self._valid(portkey):
            return portkey.decode("latin-1")
        bearer = bearer_token(headers)
        if bearer and self._valid(bearer):
            return bearer.decode("latin-1")
        if portkey is None and bearer is None:
            raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>' or 'x-portkey-api-key'.")
        raise AuthenticationFailed("Invalid API key.")

    def is_gateway_key(self, value: str) -> bool:
        return bool(self._keys) and self._valid(value.encode("latin-1", "replace"))

    def _valid(self, presented: bytes) -> bool:
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(presented, key)
        return found


def bearer_token(headers: Mapping[bytes, bytes]) -> bytes | None:
    value = headers.get(b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.strip() or None
