"""`portico deployments apply -f FILE` and `portico deployments list` as an operator runs them: the installed
command, in its own process, against a running gateway. Applying a file twice makes no new version."""

from __future__ import annotations

from pathlib import Path

from tests.admin_helpers import portico, write_yaml
from tests.conftest import KEY, Stack
from tests.deployments.conftest import new_key, simple


def test_applying_a_file_twice_makes_no_new_version(stack: Stack, tmp_path: Path) -> None:
    first, second = new_key(), new_key()
    routed = {
        "key": second,
        "variants": [
            {"name": "a", "model": "openai/gpt-4o", "prompt": {"messages": [{"role": "user", "content": "a"}]}},
            {"name": "b", "model": "openai/gpt-4o", "prompt": {"messages": [{"role": "user", "content": "b"}]}},
        ],
        "routing": [{"when": {"tier": "gold"}, "variant": "b"}],
    }
    path = write_yaml(tmp_path, "deployments", {"deployments": [simple(first), routed]})
    applied = portico("deployments", "apply", "-f", path, "--url", stack.gateway.url, key=KEY)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [f"{first}: created (v1)", f"{second}: created (v1)"]
    again = portico("deployments", "apply", "-f", path, "--url", stack.gateway.url, key=KEY)
    assert again.stdout.splitlines() == [f"{first}: unchanged (v1)", f"{second}: unchanged (v1)"]
    changed = write_yaml(tmp_path, "deployments", [simple(first, parameters={"temperature": 1.0})])
    updated = portico("deployments", "apply", "-f", changed, "--url", stack.gateway.url, key=KEY)
    assert updated.stdout.splitlines() == [f"{first}: updated to v2"]
    assert stack.get(f"/v1/admin/deployments/{first}").json()["version"] == 2
    listed = portico("deployments", "list", "--url", stack.gateway.url, key=KEY)
    assert f"{second}\tv1\ta,b" in listed.stdout.splitlines()


def test_an_invalid_deployment_is_named_and_the_others_still_apply(stack: Stack, tmp_path: Path) -> None:
    good, bad = new_key(), new_key()
    path = write_yaml(
        tmp_path, "deployments", [simple(bad, parameters={"temperature": 7}), simple(good), {"model": "openai/x"}]
    )
    applied = portico("deployments", "apply", "-f", path, "--url", stack.gateway.url, key=KEY)
    assert applied.returncode == 1
    assert f"{good}: created (v1)" in applied.stdout
    assert f"{bad}: invalid: parameters.temperature" in applied.stderr
    assert "deployment #3: `key` is required" in applied.stderr
    assert stack.get(f"/v1/admin/deployments/{bad}").status == 404


def test_a_refused_key_is_one_clear_line(stack: Stack, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "deployments", [simple(new_key())])
    refused = portico("deployments", "apply", "-f", path, "--url", stack.gateway.url, key="sk-wrong")
    assert refused.returncode == 4 and refused.stderr.startswith("error: the gateway refused the key")
