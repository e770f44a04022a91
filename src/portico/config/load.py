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


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) if m.group(2) is not None else ""), value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
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
    try:
        return Settings.model_validate(expand_env(data, env))
    except ValidationError as exc:
        raise ConfigError([_problem(e) for e in exc.errors()]) from None


def _problem(error: Any) -> str:
    path = ".".join(str(p) for p in error["loc"]) or "(top level)"
    return f"{path}: {error['msg']}"


def portico_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("PORTICO_HOME") or ".portico")
