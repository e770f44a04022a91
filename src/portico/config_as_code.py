"""`portico prompts apply -f FILE` and `portico prompts list`: stored objects declared in YAML, applied through a
running gateway's admin API. Applying a file twice changes nothing the second time (no new version).

The file is a list of prompts (or `{prompts: [...]}`), each an admin API body with a required `id`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from portico.admin_client import EXIT_REFUSED, AdminClient, AdminError

PROMPTS = "/v1/admin/prompts"
Print = Callable[[str], None]


def read_entries(path: str, kind: str) -> list[dict[str, Any]]:
    """The entries of a YAML file: a list, or a mapping holding the list under `kind`."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AdminError(f"{path}: {exc}", EXIT_REFUSED) from None
    if isinstance(data, dict) and kind in data:
        data = data[kind]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise AdminError(f"{path}: expected a list of {kind} (or `{kind}:` holding one)", EXIT_REFUSED)
    return data


def apply_prompts(client: AdminClient, entries: list[dict[str, Any]], out: Print, err: Print) -> int:
    """Create or update each prompt; one line per prompt. Returns the exit code: the worst failure's, or 0.
    An unreachable gateway or a refused key stops at once, since every later entry would fail the same way."""
    worst = 0
    for n, entry in enumerate(entries, 1):
        prompt_id = entry.get("id")
        if not isinstance(prompt_id, str) or not prompt_id:
            err(f"prompt #{n}: `id` is required, so that applying the file again finds the same prompt")
            worst = max(worst, EXIT_REFUSED)
            continue
        try:
            out(f"{prompt_id}: {_apply_one(client, prompt_id, entry)}")
        except AdminError as exc:
            if exc.status in (None, 401):
                raise
            err(f"{prompt_id}: {exc.message}")
            worst = max(worst, exc.exit_code)
    return worst


def _apply_one(client: AdminClient, prompt_id: str, entry: dict[str, Any]) -> str:
    status, _, _ = client.call("GET", f"{PROMPTS}/{prompt_id}")
    if status == 404:
        status, _, created = client.call("POST", PROMPTS, entry)
        if status == 404:  # the gateway predates stored prompts
            raise AdminError(f"{client.url} has no {PROMPTS} API", EXIT_REFUSED, status)
        return f"created (v{created['version']})"
    content = {k: v for k, v in entry.items() if k != "id"}
    status, headers, updated = client.call("PUT", f"{PROMPTS}/{prompt_id}", content)
    if status == 404:  # deleted between the two calls
        raise AdminError("deleted while being applied; apply again", EXIT_REFUSED, status)
    if headers.get("x-portico-prompt-changed") == "false":
        return f"unchanged (v{updated['version']})"
    return f"updated to v{updated['version']}"


def list_prompts(client: AdminClient, out: Print) -> int:
    status, _, listed = client.call("GET", PROMPTS)
    if status == 404:
        raise AdminError(f"{client.url} has no {PROMPTS} API", EXIT_REFUSED, status)
    for prompt in listed["data"]:
        model = prompt.get("model") or "-"
        description = prompt.get("description") or ""
        out(f"{prompt['id']}\tv{prompt['version']}\t{prompt['template_engine']}\t{model}\t{description}".rstrip())
    return 0
