"""Portkey's guardrail hooks in `x-portkey-config` → `GuardrailHook`s: `before_request_hooks` / `after_request_hooks`
(`{type: guardrail, id, checks: [{id, parameters}], deny}`) and `input_guardrails` / `output_guardrails` (ids of
built-in or stored guardrails, or inline `{"default.contains": {...}, "deny": true}` objects).

A hook without `deny` only reports its failures (status 246, Portkey's default); a guardrail named by id is a
stored refusal and denies unless it says `deny: false`. Mistakes are 400s naming the config path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from portico.core.types import GuardrailHook
from portico.wire.portkey_config import ConfigError

_KEYS: dict[str, Literal["input", "output"]] = {
    "before_request_hooks": "input",
    "input_guardrails": "input",
    "after_request_hooks": "output",
    "output_guardrails": "output",
}
_OPTIONS = frozenset({"deny", "id", "type", "async", "on_fail", "on_success", "name", "sequential"})


def parse_hooks(config: Mapping[str, Any]) -> tuple[GuardrailHook, ...]:
    """Every hook of a config, in key order then list order; () when it names none (the common case)."""
    hooks: list[GuardrailHook] = []
    for key, phase in _KEYS.items():
        entries = config.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ConfigError(key, "must be a list")
        for index, entry in enumerate(entries):
            hooks.append(_hook(entry, phase, f"{key}[{index}]"))
    return tuple(hooks)


def _hook(entry: Any, phase: Literal["input", "output"], where: str) -> GuardrailHook:
    if isinstance(entry, str) and entry:
        return GuardrailHook(entry, phase, ref=entry, deny=True)
    if not isinstance(entry, dict):
        raise ConfigError(where, "must be a guardrail id or an object")
    deny = entry.get("deny", False)
    if not isinstance(deny, bool):
        raise ConfigError(f"{where}.deny", "must be true or false")
    hook_id = entry.get("id")
    if hook_id is not None and not isinstance(hook_id, str):
        raise ConfigError(f"{where}.id", "must be a string")
    if "checks" in entry:
        checks = _checks(entry["checks"], f"{where}.checks")
    else:  # the inline form: every key that is not an option is a check id with its parameters
        checks = tuple((k, _params(v, f"{where}.{k}")) for k, v in entry.items() if k not in _OPTIONS)
    if not checks:
        raise ConfigError(where, "names no check")
    return GuardrailHook(hook_id or where, phase, checks=checks, deny=deny)


def _checks(value: Any, where: str) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    if not isinstance(value, list):
        raise ConfigError(where, "must be a list of {id, parameters}")
    checks = []
    for index, check in enumerate(value):
        if not isinstance(check, dict) or not isinstance(check.get("id"), str):
            raise ConfigError(f"{where}[{index}]", "must be an object with a string 'id'")
        checks.append((check["id"], _params(check.get("parameters", {}), f"{where}[{index}].parameters")))
    return tuple(checks)


def _params(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(where, "must be an object of parameters")
    return value
