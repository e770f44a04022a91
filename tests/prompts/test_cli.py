"""`portico prompts apply -f FILE` and `portico prompts list` as an operator runs them: the installed command, in
its own process, against a running gateway. Applying a file twice makes no new version."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.admin_helpers import portico, write_yaml
from tests.conftest import KEY, Stack
from tests.gateway_server import free_port
from tests.http.test_admin_api import as_admin


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
    path = write_yaml(tmp_path, "prompts", declared(prefix))
    url = ["--url", stack.gateway.url]
    first = portico("prompts", "apply", "-f", path, *url, "--key", KEY)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"{prefix}-support: created (v1)", f"{prefix}-summary: created (v1)"]
    again = portico("prompts", "apply", "-f", path, *url, key=KEY)  # the key from $PORTICO_API_KEY
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"{prefix}-support: unchanged (v1)", f"{prefix}-summary: unchanged (v1)"]
    versions = as_admin(stack, "GET", f"/v1/admin/prompts/{prefix}-support/versions").json()["data"]
    assert [v["version"] for v in versions] == [1]
    path = write_yaml(tmp_path, "prompts", {"prompts": declared(prefix, 0.9)})
    changed = portico("prompts", "apply", "-f", path, *url, key=KEY)
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
    path = write_yaml(tmp_path, "prompts", [bad, good, {"messages": []}])
    result = portico("prompts", "apply", "-f", path, "--url", stack.gateway.url, key=KEY)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{prefix}-support: created (v1)"]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{prefix}-summary: invalid: parameters.temperature: "), errors
    assert errors[1].startswith("prompt #3: `id` is required"), errors
    assert as_admin(stack, "GET", f"/v1/admin/prompts/{prefix}-summary").status == 404


def test_connection_refused_a_wrong_key_and_a_bad_file_are_one_clear_line(stack: Stack, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "prompts", declared("never"))
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
