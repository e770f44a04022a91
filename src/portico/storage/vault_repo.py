"""The vault's rows: virtual keys (secret still encrypted) and routing configs, as loaders and write statements
for their `StateSync` namespaces (storage/synced.py).

Writes replace a row inside the caller's transaction (storage/statements.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portico.storage.connection import Connection
from portico.storage.secrets import SecretBox, mask
from portico.storage.statements import delete_rows, replace_row
from portico.storage.synced import Statements
from portico.storage.tables import routing_configs, virtual_keys


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


async def load_keys(conn: Connection) -> dict[str, VirtualKey]:
    rows = (await conn.execute(virtual_keys.select())).mappings().all()
    return {str(row["id"]): VirtualKey(**dict(row)) for row in rows}


async def load_configs(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = (await conn.execute(routing_configs.select())).mappings().all()
    return {str(row["id"]): dict(row["config"]) for row in rows}


def save_key(key: VirtualKey) -> Statements:
    row = {
        "id": key.id,
        "provider": key.provider,
        "encrypted_key": key.encrypted_key,
        "base_url": key.base_url,
        "note": key.note,
        "created_at": key.created_at,
    }
    return replace_row(virtual_keys, "id", row)


def delete_key(key_id: str) -> Statements:
    return delete_rows(virtual_keys, "id", key_id)


def save_config(config_id: str, config: Mapping[str, Any]) -> Statements:
    return replace_row(routing_configs, "id", {"id": config_id, "config": dict(config)})


def delete_config(config_id: str) -> Statements:
    return delete_rows(routing_configs, "id", config_id)
