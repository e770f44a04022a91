"""Read a YAML config, expand `${VAR}` / `${VAR:-default}` from the environment, and validate it into `Settings`.

Errors name the key path (`providers.openai.timeout: ...`) so `portico check-config` output is actionable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from portico.config.schema import Settings

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A config that cannot be used; `problems` lists one `path: message` line per error."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def expand_env(value: Any, env: Mapping[str, str], missing: list[str] | None = None, path: str = "") -> Any:
    """`${VAR}` and `${VAR:-default}` from `env`. A `${VAR}` whose variable is unset appends `path: ...` to
    `missing` (and expands to ""): an unset key must not quietly become an empty one."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is None and missing is not None:
                missing.append(
                    f"{path or '(top level)'}: environment variable {name} is not set "
                    f"(set it, or write ${{{name}:-default}} for an optional value)"
                )
            return default or ""

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env, missing, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, missing, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def load_settings(path: str | Path | None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    if path is None:
        return Settings()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    missing: list[str] = []
    expanded = expand_env(data, env, missing)
    try:
        settings = Settings.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(missing + [_problem(e) for e in exc.errors()]) from None
    if missing:
        raise ConfigError(missing)
    return settings


def _problem(error: Any) -> str:
    path = ".".join(str(p) for p in error["loc"]) or "(top level)"
    return f"{path}: {str(error['msg']).removeprefix('Value error, ')}"


def portico_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("PORTICO_HOME") or ".portico")
