"""Virtual keys and stored routing configs: what `x-portkey-virtual-key` and `x-portkey-config: <id>` refer to.

A virtual key names a configured provider plus the credentials to use with it; the secret is encrypted at rest
(`SecretBox`) and only ever shown masked. Lookups happen on the request path, so they read an in-memory map
(O(1), no I/O); writes go through the admin API, which also persists them when a `Persistence` is attached.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from portico.core.types import ResolvedKey
from portico.storage.secrets import SecretBox, mask


@dataclass(frozen=True, slots=True)
class VirtualKey:
    id: str
    provider: str
    encrypted_key: str | None
    base_url: str | None
    created_at: float
    note: str = ""

    def public(self, box: SecretBox) -> dict[str, Any]:
        """What the admin API may show: everything but the secret, which is masked."""
        secret = box.decrypt(self.encrypted_key) if self.encrypted_key else None
        return {
            "id": self.id,
            "provider": self.provider,
            "api_key": mask(secret),
            "base_url": self.base_url,
            "note": self.note,
            "created_at": int(self.created_at),
        }


class Persistence(Protocol):
    async def save_virtual_key(self, key: VirtualKey) -> None: ...

    async def delete_virtual_key(self, key_id: str) -> None: ...

    async def save_config(self, config_id: str, config: Mapping[str, Any]) -> None: ...

    async def delete_config(self, config_id: str) -> None: ...


class Vault:
    def __init__(self, box: SecretBox, persistence: Persistence | None = None) -> None:
        self.box = box
        self.persistence = persistence
        self._keys: dict[str, VirtualKey] = {}
        self._configs: dict[str, dict[str, Any]] = {}

    def load(self, keys: list[VirtualKey], configs: Mapping[str, Mapping[str, Any]]) -> None:
        self._keys = {k.id: k for k in keys}
        self._configs = {cid: dict(c) for cid, c in configs.items()}

    async def add_key(
        self,
        provider: str,
        api_key: str | None,
        *,
        base_url: str | None = None,
        key_id: str | None = None,
        note: str = "",
    ) -> VirtualKey:
        record = VirtualKey(
            id=key_id or f"vk-{secrets.token_hex(8)}",
            provider=provider,
            encrypted_key=self.box.encrypt(api_key) if api_key else None,
            base_url=base_url,
            created_at=time.time(),
            note=note,
        )
        self._keys[record.id] = record
        if self.persistence is not None:
            await self.persistence.save_virtual_key(record)
        return record

    async def delete_key(self, key_id: str) -> bool:
        found = self._keys.pop(key_id, None) is not None
        if found and self.persistence is not None:
            await self.persistence.delete_virtual_key(key_id)
        return found

    def virtual_keys(self) -> list[VirtualKey]:
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def get_key(self, key_id: str) -> VirtualKey | None:
        return self._keys.get(key_id)

    def resolve(self, key_id: str) -> ResolvedKey | None:
        record = self._keys.get(key_id)
        if record is None:
            return None
        secret = self.box.decrypt(record.encrypted_key) if record.encrypted_key else None
        return ResolvedKey(record.provider, secret, record.base_url)

    async def put_config(self, config_id: str, config: Mapping[str, Any]) -> None:
        self._configs[config_id] = dict(config)
        if self.persistence is not None:
            await self.persistence.save_config(config_id, config)

    async def delete_config(self, config_id: str) -> bool:
        found = self._configs.pop(config_id, None) is not None
        if found and self.persistence is not None:
            await self.persistence.delete_config(config_id)
        return found

    def config(self, config_id: str) -> Mapping[str, Any] | None:
        return self._configs.get(config_id)

    def configs(self) -> dict[str, dict[str, Any]]:
        return dict(self._configs)
