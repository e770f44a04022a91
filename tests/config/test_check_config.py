"""`portico check-config` is the contract: what `serve` refuses, the check refuses first, with the same line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway_server import free_port

PORTICO = [sys.executable, "-m", "portico.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PORTICO, *args], check=False, capture_output=True, text=True, timeout=60, env=env)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "portico.yaml"
    path.write_text(text)
    return str(path)


def test_a_typo_in_a_provider_entry_is_refused_with_its_path_and_the_closest_key(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        'providers: {typo: {type: openai, api_key: k, base_ur: "http://127.0.0.1:9912/v1", modles: [x]}}\n',
    )
    result = run("check-config", config)
    assert result.returncode == 1
    assert "providers.typo.base_ur: unknown key (did you mean 'base_url'?)" in result.stderr
    assert "providers.typo.modles: unknown key (did you mean 'models'?)" in result.stderr


def test_adapter_options_are_declared_and_typed(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "providers:\n"
        "  claude: {type: anthropic, api_key: k, default_max_tokens: 1024}\n"
        '  az: {type: azure, api_key: k, base_url: "https://x.openai.azure.com", api_version: "2024-10-21"}\n'
        "  gem: {type: gemini, api_key: k, api_verison: v1}\n"
        '  claude2: {type: anthropic, api_key: k, default_max_tokens: "lots"}\n'
        "  groq: {api_key: k, region: eu}\n"
        "  oops: {type: anthropc}\n",
    )
    result = run("check-config", config)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()[1:]
    assert len(lines) == 4, result.stderr
    assert "providers.gem.api_verison: unknown key (did you mean 'api_version'?)" in result.stderr
    assert "providers.claude2.default_max_tokens: Input should be a valid integer" in result.stderr
    assert "providers.groq.region: unknown key" in result.stderr  # an option of another adapter
    assert "providers.oops.type: unknown adapter 'anthropc' (did you mean 'anthropic'?)" in result.stderr


def test_an_unset_variable_is_an_error_naming_it_and_a_default_is_not(tmp_path: Path) -> None:
    config = write(tmp_path, 'auth: {keys: ["${H10_UNSET_KEY}", "${H10_OPTIONAL:-sk-x}"]}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("H10_")}
    result = run("check-config", config, env=env)
    assert result.returncode == 1
    assert "auth.keys[0]: environment variable H10_UNSET_KEY is not set" in result.stderr
    assert "H10_OPTIONAL" not in result.stderr
    assert run("check-config", config, env={**env, "H10_UNSET_KEY": "sk-set"}).returncode == 0


BAD_SETTINGS = {
    "storage.url": ('storage: {url: "mysql://db/portico"}\n', "storage.url: unsupported database 'mysql'"),
    "cache.url": ('cache: {url: "memcached://127.0.0.1"}\n', "cache.url: unsupported scheme in 'memcached://"),
    "logging.level": ("logging: {level: loud}\n", "logging.level: 'loud' is not a log level"),
    "auth.keyed_routes": ('auth: {keyed_routes: ["/v1/admin"]}\n', "auth.keyed_routes.0: Input should be '/v1/models'"),
    "routing.state_url": ('routing: {state_url: "http://x"}\n', "routing.state_url: unsupported scheme"),
    "portkey.configs": (
        "portkey: {configs: {bad: {strategy: {mode: weird}, targets: [{provider: openai}]}, "
        "vk: {targets: [{virtual_key: stored-later}]}}}\n",
        "portkey.configs.bad: x-portkey-config config.strategy.mode: must be one of",
    ),
}


@pytest.mark.parametrize("key", sorted(BAD_SETTINGS))
def test_what_serve_refuses_the_check_refuses_first_with_the_same_line(tmp_path: Path, key: str) -> None:
    text, expected = BAD_SETTINGS[key]
    config = write(tmp_path, text)
    checked = run("check-config", config)
    assert checked.returncode == 1 and expected in checked.stderr, checked.stderr
    problem = next(line.strip() for line in checked.stderr.splitlines() if expected in line)
    env = {**os.environ, "PORTICO_HOME": str(tmp_path)}
    served = run("serve", "--config", config, "--port", str(free_port()), env=env)
    assert served.returncode == 2
    assert served.stderr.splitlines() == [f"config error: {problem}"]


def test_postgresql_without_its_driver_names_the_extra(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "asyncpg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'asyncpg'\", name='asyncpg')\n")
    config = write(tmp_path, 'storage: {url: "postgresql://portico:secret@127.0.0.1:5432/test"}\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow")}
    result = run("check-config", config, env=env)
    assert result.returncode == 1
    assert "asyncpg, is not installed: pip install 'portico[postgres]'" in result.stderr
    assert "secret" not in result.stderr


def test_strict_connects_to_each_dependency_one_line_each(tmp_path: Path) -> None:
    dead = free_port()
    config = write(
        tmp_path,
        "providers:\n"
        f'  openai: {{api_key: k, base_url: "http://127.0.0.1:{dead}/v1"}}\n'
        f'  local: {{type: vllm, base_url: "http://user:pw@127.0.0.1:{dead}/v1"}}\n'
        f'storage: {{url: "sqlite:///{tmp_path}/portico.db"}}\n'
        f'routing: {{state_url: "redis://:redispw@127.0.0.1:{dead}/0"}}\n',
    )
    result = run("check-config", "--strict", config)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": OK") and len(lines) == 5, result.stdout
    assert lines[1].startswith("ok    database: sqlite:///")
    assert lines[2].startswith(f"FAIL  redis (routing state): redis://127.0.0.1:{dead}/0: ")
    assert lines[3].startswith(f"FAIL  provider local: http://user@127.0.0.1:{dead}/v1: ")
    assert lines[4].startswith(f"FAIL  provider openai: http://127.0.0.1:{dead}/v1: ")
    assert ":pw@" not in result.stdout and "redispw" not in result.stdout
    assert "3 connection check(s) failed" in result.stderr
    assert not (tmp_path / "portico.db").exists()  # the check writes nothing
