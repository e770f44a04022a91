"""`portico prompts apply -f FILE` and `portico prompts list` as an operator runs them: the installed command, in
its own process, against a running gateway. Applying a file twice makes no new version."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import KEY, Stack
from tests.gateway_server import free_port
from tests.http.test_admin_api import as_admin

PORTICO = str(Path(sys.executable).parent / "portico")


def portico(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PORTICO_API_KEY"}
    if key is not None:
        env["PORTICO_API_KEY"] = key
    return subprocess.run([PORTICO, *args], check=False, capture_output=True, text=True, timeout=60, env=env)


def write(tmp_path: Path, prompts: object) -> str:
    path = tmp_path / f"prompts-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump(prompts))
    return str(path)


def declared(prefix: str, temperature: float = 0.2) -> list[dict[str, object]]:
    return [
        {
            "id": f"{prefix}-support",
            "description": "support persona",
            "messages": [{"role": "system", "content": "You help {{customer}}."}],
            "parameters": {"temperature": temperature},
            "variables": {"customer": "a customer"},
        },
        {
            "id": f"{prefix}-summary",
            "template_engine": "jinja",
            "messages": [{"role": "system", "content": "Summarise{% if short %} briefly{% endif %}."}],
        },
    ]


def test_applying_a_file_twice_makes_no_new_version(stack: Stack, tmp_path: Path) -> None:
    prefix = f"cli-{secrets.token_hex(4)}"
    path = write(tmp_path, declared(prefix))
    url = ["--url", stack.gateway.url]
    first = portico("prompts", "apply", "-f", path, *url, "--key", KEY)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"{prefix}-support: created (v1)", f"{prefix}-summary: created (v1)"]
    again = portico("prompts", "apply", "-f", path, *url, key=KEY)  # the key from $PORTICO_API_KEY
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"{prefix}-support: unchanged (v1)", f"{prefix}-summary: unchanged (v1)"]
    versions = as_admin(stack, "GET", f"/v1/admin/prompts/{prefix}-support/versions").json()["data"]
    assert [v["version"] for v in versions] == [1]
    changed = portico("prompts", "apply", "-f", write(tmp_path, {"prompts": declared(prefix, 0.9)}), *url, key=KEY)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines() == [f"{prefix}-support: updated to v2", f"{prefix}-summary: unchanged (v1)"]
    assert as_admin(stack, "GET", f"/v1/admin/prompts/{prefix}-support").json()["parameters"] == {"temperature": 0.9}
    listed = portico("prompts", "list", *url, key=KEY)
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines() if line.startswith(prefix)]
    assert [line[:3] for line in lines] == [[f"{prefix}-summary", "v1", "jinja"], [f"{prefix}-support", "v2", "text"]]


def test_an_invalid_prompt_is_named_and_the_others_still_apply(stack: Stack, tmp_path: Path) -> None:
    prefix = f"cli-{secrets.token_hex(4)}"
    good, bad = declared(prefix)
    bad["parameters"] = {"temperature": 5}
    result = portico(
        "prompts", "apply", "-f", write(tmp_path, [bad, good, {"messages": []}]), "--url", stack.gateway.url, key=KEY
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{prefix}-support: created (v1)"]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{prefix}-summary: invalid: parameters.temperature: "), errors
    assert errors[1].startswith("prompt #3: `id` is required"), errors
    assert as_admin(stack, "GET", f"/v1/admin/prompts/{prefix}-summary").status == 404


def test_connection_refused_a_wrong_key_and_a_bad_file_are_one_clear_line(stack: Stack, tmp_path: Path) -> None:
    path = write(tmp_path, declared("never"))
    refused = portico("prompts", "list", "--url", f"http://127.0.0.1:{free_port()}", key=KEY)
    assert refused.returncode == 3 and refused.stdout == ""
    assert refused.stderr.startswith("error: cannot reach the gateway at http://127.0.0.1:"), refused.stderr
    wrong = portico("prompts", "apply", "-f", path, "--url", stack.gateway.url, "--key", "sk-wrong")
    assert wrong.returncode == 4 and wrong.stdout == ""
    assert wrong.stderr == "error: the gateway refused the key (Invalid API key.); pass --key or set PORTICO_API_KEY\n"
    no_key = portico("prompts", "list", "--url", stack.gateway.url)
    assert no_key.returncode == 4 and "PORTICO_API_KEY" in no_key.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("prompts: [unclosed")
    bad_yaml = portico("prompts", "apply", "-f", str(broken), "--url", stack.gateway.url, key=KEY)
    assert bad_yaml.returncode == 1 and bad_yaml.stderr.startswith(f"error: {broken}:"), bad_yaml.stderr
    missing = portico("prompts", "apply", "--url", stack.gateway.url)
    assert missing.returncode == 2 and "-f/--file" in missing.stderr
    assert as_admin(stack, "GET", "/v1/admin/prompts/never-support").status == 404
