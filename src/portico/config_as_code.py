"""`portico prompts|deployments apply -f FILE` and `... list`: stored objects declared in YAML, applied through a
running gateway's admin API. Applying a file twice changes nothing the second time (no new version).

A file is a list of objects (or `{prompts: [...]}`, `{deployments: [...]}`), each an admin API body with its id
field (`Resource.id_field`); one `Resource` row per kind of object, one apply/list loop for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from portico.admin_client import EXIT_REFUSED, AdminClient, AdminError

Print = Callable[[str], None]
Entry = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind of stored object: its admin API collection, the field naming an object, and the `list` columns
    between `v<version>` and the description."""

    noun: str
    plural: str
    path: str
    id_field: str
    columns: Callable[[Entry], list[str]]


PROMPTS = Resource(
    "prompt", "prompts", "/v1/admin/prompts", "id", lambda p: [p["template_engine"], p.get("model") or "-"]
)
DEPLOYMENTS = Resource(
    "deployment", "deployments", "/v1/admin/deployments", "key", lambda d: [",".join(v["name"] for v in d["variants"])]
)
RESOURCES = {resource.plural: resource for resource in (PROMPTS, DEPLOYMENTS)}


def read_entries(path: str, kind: str) -> list[Entry]:
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


def apply_all(client: AdminClient, resource: Resource, entries: list[Entry], out: Print, err: Print) -> int:
    """Create or update each object; one line each. Returns the exit code: the worst failure's, or 0. An
    unreachable gateway or a refused key stops at once, since every later entry would fail the same way."""
    worst = 0
    for n, entry in enumerate(entries, 1):
        name = entry.get(resource.id_field)
        if not isinstance(name, str) or not name:
            field, noun = resource.id_field, resource.noun
            err(f"{noun} #{n}: `{field}` is required, so that applying the file again finds the same {noun}")
            worst = max(worst, EXIT_REFUSED)
            continue
        try:
            out(f"{name}: {_apply_one(client, resource, name, entry)}")
        except AdminError as exc:
            if exc.status in (None, 401):
                raise
            err(f"{name}: {exc.message}")
            worst = max(worst, exc.exit_code)
    return worst


def _apply_one(client: AdminClient, resource: Resource, name: str, entry: Entry) -> str:
    status, _, _ = client.call("GET", f"{resource.path}/{name}")
    if status == 404:
        status, _, created = client.call("POST", resource.path, entry)
        if status == 404:  # the gateway predates this kind of object
            raise AdminError(f"{client.url} has no {resource.path} API", EXIT_REFUSED, status)
        return f"created (v{created['version']})"
    content = {k: v for k, v in entry.items() if k != resource.id_field}
    status, headers, updated = client.call("PUT", f"{resource.path}/{name}", content)
    if status == 404:  # deleted between the two calls
        raise AdminError("deleted while being applied; apply again", EXIT_REFUSED, status)
    if headers.get(f"x-portico-{resource.noun}-changed") == "false":
        return f"unchanged (v{updated['version']})"
    return f"updated to v{updated['version']}"


def list_all(client: AdminClient, resource: Resource, out: Print) -> int:
    """One tab-separated line per object: its id, `v<version>`, the resource's columns, its description."""
    status, _, listed = client.call("GET", resource.path)
    if status == 404:
        raise AdminError(f"{client.url} has no {resource.path} API", EXIT_REFUSED, status)
    for item in listed["data"]:
        description = item.get("description") or ""
        out("\t".join([item[resource.id_field], f"v{item['version']}", *resource.columns(item), description]).rstrip())
    return 0
