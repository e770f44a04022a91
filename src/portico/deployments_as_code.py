"""`portico deployments apply -f FILE` and `portico deployments list`: deployments declared in YAML, applied through
a running gateway's admin API. Applying a file twice changes nothing the second time (no new version).

The file is a list of deployments (or `{deployments: [...]}`), each an admin API body with its `key`.
"""

from __future__ import annotations

from typing import Any

from portico.admin_client import EXIT_REFUSED, AdminClient, AdminError
from portico.config_as_code import Print

DEPLOYMENTS = "/v1/admin/deployments"


def apply_deployments(client: AdminClient, entries: list[dict[str, Any]], out: Print, err: Print) -> int:
    """Create or update each deployment; one line each. Returns the exit code: the worst failure's, or 0. An
    unreachable gateway or a refused key stops at once, since every later entry would fail the same way."""
    worst = 0
    for n, entry in enumerate(entries, 1):
        key = entry.get("key")
        if not isinstance(key, str) or not key:
            err(f"deployment #{n}: `key` is required, so that applying the file again finds the same deployment")
            worst = max(worst, EXIT_REFUSED)
            continue
        try:
            out(f"{key}: {_apply_one(client, key, entry)}")
        except AdminError as exc:
            if exc.status in (None, 401):
                raise
            err(f"{key}: {exc.message}")
            worst = max(worst, exc.exit_code)
    return worst


def _apply_one(client: AdminClient, key: str, entry: dict[str, Any]) -> str:
    status, _, _ = client.call("GET", f"{DEPLOYMENTS}/{key}")
    if status == 404:
        status, _, created = client.call("POST", DEPLOYMENTS, entry)
        if status == 404:  # the gateway predates deployments
            raise AdminError(f"{client.url} has no {DEPLOYMENTS} API", EXIT_REFUSED, status)
        return f"created (v{created['version']})"
    content = {k: v for k, v in entry.items() if k != "key"}
    status, headers, updated = client.call("PUT", f"{DEPLOYMENTS}/{key}", content)
    if status == 404:  # deleted between the two calls
        raise AdminError("deleted while being applied; apply again", EXIT_REFUSED, status)
    if headers.get("x-portico-deployment-changed") == "false":
        return f"unchanged (v{updated['version']})"
    return f"updated to v{updated['version']}"


def list_deployments(client: AdminClient, out: Print) -> int:
    status, _, listed = client.call("GET", DEPLOYMENTS)
    if status == 404:
        raise AdminError(f"{client.url} has no {DEPLOYMENTS} API", EXIT_REFUSED, status)
    for deployment in listed["data"]:
        variants = ",".join(v["name"] for v in deployment["variants"])
        line = f"{deployment['key']}\tv{deployment['version']}\t{variants}\t{deployment.get('description') or ''}"
        out(line.rstrip())
    return 0
