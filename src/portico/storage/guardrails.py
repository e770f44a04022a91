"""Custom guardrails stored through the admin API (`GuardrailStore`): id → spec, kept in step across workers by
`StateSync`. The request path only reads `get()` (a dict lookup); the pipeline compiles a spec into a check.

A spec is stored as the admin API validated it; its meaning (`checks` or `webhook`) lives in `guardrails.custom`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from portico.storage.connection import Connection
from portico.storage.statements import delete_rows, replace_row
from portico.storage.synced import StateSync
from portico.storage.tables import guardrails

Spec = Mapping[str, Any]


async def _load(conn: Connection) -> dict[str, Spec]:
    rows = (await conn.execute(guardrails.select())).mappings().all()
    return {str(row["id"]): dict(row["spec"]) for row in rows}


class GuardrailStore:
    """Without a `StateSync` on a database, guardrails live in this process only (tests, tools)."""

    def __init__(self, sync: StateSync | None = None) -> None:
        self.sync = sync or StateSync(None)
        self._ns = self.sync.namespace("guardrails", _load)

    def get(self, guardrail_id: str) -> Spec | None:
        return self._ns.data.get(guardrail_id)

    def all(self) -> dict[str, Spec]:
        return dict(sorted(self._ns.data.items()))

    async def put(self, guardrail_id: str, spec: Spec) -> None:
        row = {"id": guardrail_id, "spec": dict(spec), "updated_at": time.time()}
        await self.sync.write(self._ns, guardrail_id, dict(spec), replace_row(guardrails, "id", row))

    async def delete(self, guardrail_id: str) -> bool:
        if guardrail_id not in self._ns.data:
            await self.sync.catch_up()
            if guardrail_id not in self._ns.data:
                return False
        await self.sync.write(self._ns, guardrail_id, None, delete_rows(guardrails, "id", guardrail_id))
        return True
