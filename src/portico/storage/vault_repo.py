"""The vault's persistence: virtual keys (still encrypted) and routing configs in the database, loaded at startup.

Writes are delete-then-insert in one transaction, which works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portico.storage.db import Database
from portico.storage.tables import routing_configs, virtual_keys
from portico.storage.vault import VirtualKey


class VaultRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self) -> tuple[list[VirtualKey], dict[str, dict[str, Any]]]:
        async with self.db.begin() as conn:
            keys = (await conn.execute(virtual_keys.select())).mappings().all()
            configs = (await conn.execute(routing_configs.select())).mappings().all()
        return (
            [VirtualKey(**dict(row)) for row in keys],
            {str(row["id"]): dict(row["config"]) for row in configs},
        )

    async def save_virtual_key(self, key: VirtualKey) -> None:
        row = {
            "id": key.id,
            "provider": key.provider,
            "encrypted_key": key.encrypted_key,
            "base_url": key.base_url,
            "note": key.note,
            "created_at": key.created_at,
        }
        async with self.db.begin() as conn:
            await conn.execute(virtual_keys.delete().where(virtual_keys.c.id == key.id))
            await conn.execute(virtual_keys.insert(), [row])

    async def delete_virtual_key(self, key_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(virtual_keys.delete().where(virtual_keys.c.id == key_id))

    async def save_config(self, config_id: str, config: Mapping[str, Any]) -> None:
        async with self.db.begin() as conn:
            await conn.execute(routing_configs.delete().where(routing_configs.c.id == config_id))
            await conn.execute(routing_configs.insert(), [{"id": config_id, "config": dict(config)}])

    async def delete_config(self, config_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(routing_configs.delete().where(routing_configs.c.id == config_id))
