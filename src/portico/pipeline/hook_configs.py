"""The guardrail hooks of a stored or static Portkey config, checked when it is written (`PUT /v1/admin/configs/{id}`)
or loaded (`portico check-config`, `serve`), so that a request never meets a check id, parameter or guardrail
reference that cannot work: the same readings the request path uses (`parse_hooks`, `build_portkey_check`).

A static config is checked without the store: a reference by id must then be a built-in, or any id outside the
built-ins' reserved prefixes (`orq_`, `portico_`), which only the store can vouch for and the request checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from portico.core.errors import RequestError
from portico.guardrails.base import GuardrailConfigError
from portico.guardrails.registry import BUILTIN_IDS, HEALING_ID, REDACTION_ID, build_portkey_check
from portico.wire.portkey_hooks import parse_hooks

RESERVED_PREFIXES = ("orq_", "portico_")
BUILT_IN = frozenset({*BUILTIN_IDS, REDACTION_ID, HEALING_ID})


def hook_problem(config: Mapping[str, Any], is_stored: Callable[[str], bool] | None) -> str | None:
    """Why the config's hooks could never run (the message names the config path), or None. `is_stored` says
    whether a guardrail id is stored; None when the store cannot be asked (a static config)."""
    try:
        hooks = parse_hooks(config)
    except RequestError as exc:
        return exc.message
    for hook in hooks:
        if hook.ref is not None:
            if _known(hook.ref, is_stored):
                continue
            listed = ", ".join(sorted(BUILT_IN))
            where = _where(config, hook.ref)
            return f"x-portkey-config {where}: unknown guardrail '{hook.ref}' (built-ins: {listed}; or a stored id)"
        for check_id, params in hook.checks:
            try:
                build_portkey_check(check_id, params)
            except GuardrailConfigError as exc:
                return f"x-portkey-config {hook.id}: {exc}"
    return None


def _known(guardrail_id: str, is_stored: Callable[[str], bool] | None) -> bool:
    if guardrail_id in BUILT_IN:
        return True
    if is_stored is None:
        return not guardrail_id.startswith(RESERVED_PREFIXES)
    return is_stored(guardrail_id)


def _where(config: Mapping[str, Any], ref: str) -> str:
    """The config path of a guardrail named by id (its hook carries the id, not the path)."""
    for key in ("before_request_hooks", "input_guardrails", "after_request_hooks", "output_guardrails"):
        entries = config.get(key)
        if isinstance(entries, list) and ref in entries:
            return f"{key}[{entries.index(ref)}]"
    return ref
