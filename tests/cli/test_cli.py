"""The `portico` command as an operator meets it: `check-config` names key paths; `serve` runs real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import http
from tests.gateway_server import free_port

PORTICO = [sys.executable, "-m", "portico.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PORTICO, *args], check=False, capture_output=True, text=True, timeout=60, env=env)


def test_check_config_accepts_the_documented_shape(tmp_path: Path) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text(
        'auth: {keys: ["sk-portico-test"]}\n'
        "providers:\n"
        '  openai: {api_key: "${TEST_OPENAI_KEY:-sk-x}", base_url: "http://127.0.0.1:9100/v1"}\n'
        '  my-vllm: {type: vllm, base_url: "http://127.0.0.1:9100/v1"}\n'
        f'storage: {{url: "sqlite:///{tmp_path}/portico.db"}}\n'
        'cache: {url: "memory://"}\n'
    )
    result = run("check-config", str(config))
    assert result.returncode == 0 and "OK" in result.stdout


def test_check_config_names_every_bad_key_path(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        'server: {port: 99999}\nproviders:\n  weird: {type: no-such-adapter}\n  openai: {timeout: "soon"}\n'
    )
    result = run("check-config", str(config))
    assert result.returncode == 1
    assert "server.port" in result.stderr and "providers.openai.timeout" in result.stderr
    missing = run("check-config", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 1 and "absent.yaml" in missing.stderr


def test_serve_with_two_workers_answers_on_one_port(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "portico.yaml"
    config.write_text(f'auth: {{keys: ["sk-cli"]}}\nstorage: {{url: "sqlite:///{tmp_path}/portico.db"}}\n')
    env = {**os.environ, "PORTICO_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [*PORTICO, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http("GET", f"http://127.0.0.1:{port}/health", timeout=1).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("portico serve did not become healthy")
            time.sleep(0.1)
        body = json.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hello"}]}).encode()
        headers = {"authorization": "Bearer sk-cli", "content-type": "application/json"}
        for _ in range(20):
            response = http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", body, headers)
            assert (
                response.status == 200
                and json.loads(response.body)["choices"][0]["message"]["content"] == "Mock reply to: hello"
            )
        assert http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", body, {}).status == 401
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert process.returncode == 0, output
    assert "Traceback" not in output
