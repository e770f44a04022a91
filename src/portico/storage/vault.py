"""Virtual keys and stored routing configs: what `x-portkey-virtual-key` and `x-portkey-config: <id>` refer to.

A virtual key names a configured provider plus the credentials to use with it; the secret is encrypted at rest
(`SecretBox`) and only ever shown masked. Lookups happen on the request path, so they must stay synchronous dict
lookups (no I/O); both maps are `StateSync` namespaces, so a write through any worker or instance reaches all.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from portico.core.types import ResolvedKey
from portico.storage import vault_repo
from portico.storage.secrets import SecretBox
from portico.storage.synced import StateSync
from portico.storage.vault_repo import VirtualKey

__all__ = ["Vault", "VirtualKey"]


class Vault:
    """Without a `StateSync` on a database, the vault lives in this process only (tests, tools)."""

    def __init__(self, box: SecretBox, sync: StateSync | None = None) -> None:
        self.box = box
        self.sync = sync or StateSync(None)
        self._keys = self.sync.namespace("virtual_keys", vault_repo.load_keys)
        self._configs = self.sync.namespace("routing_configs", vault_repo.load_configs)

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
        await self.sync.write(self._keys, record.id, record, vault_repo.save_key(record))
        return record

    async def delete_key(self, key_id: str) -> bool:
        if key_id not in self._keys.data:
            await self.sync.catch_up()
            if key_id not in self._keys.data:
                return False
        await self.sync.write(self._keys, key_id, None, vault_repo.delete_key(key_id))
        return True

    def virtual_keys(self) -> list[VirtualKey]:
        return sorted(self._keys.data.values(), key=lambda k: k.created_at)

    def get_key(self, key_id: str) -> VirtualKey | None:
        return self._keys.data.get(key_id)

    def resolve(self, key_id: str) -> ResolvedKey | None:
        record = self._keys.data.get(key_id)
        if record is None:
            return None
        secret = self.box.decrypt(record.encrypted_key) if record.encrypted_key else None
        return ResolvedKey(record.provider, secret, record.base_url)

    async def put_config(self, config_id: str, config: Mapping[str, Any]) -> None:
        await self.sync.write(self._configs, config_id, dict(config), vault_repo.save_config(config_id, config))

    async def delete_config(self, config_id: str) -> bool:
        if config_id not in self._configs.data:
            await self.sync.catch_up()
            if config_id not in self._configs.data:
                return False
        await self.sync.write(self._configs, config_id, None, vault_repo.delete_config(config_id))
        return True

    def config(self, config_id: str) -> Mapping[str, Any] | None:
        return self._configs.data.get(config_id)

    def configs(self) -> dict[str, dict[str, Any]]:
        return dict(self._configs.data)
