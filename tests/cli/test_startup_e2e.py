"""`portico serve` that cannot start says so in one line and exits non-zero within seconds, with any number of
workers: no traceback, no respawning, no "Unclosed client session"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.gateway_server import free_port

PORTICO = [sys.executable, "-m", "portico.cli"]


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    config = tmp_path / "portico.yaml"
    if not config.exists():
        config.write_text(f'storage: {{url: "sqlite:///{tmp_path}/portico.db"}}\n')
    start = time.monotonic()
    result = subprocess.run(
        [*PORTICO, "serve", "--config", str(config), "--host", "127.0.0.1", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PORTICO_HOME": str(tmp_path), **(env or {})},
    )
    return result.returncode, result.stderr, time.monotonic() - start


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr and "Unclosed" not in stderr, stderr
    assert all(len(line) < 400 for line in stderr.splitlines()), stderr


def test_a_port_in_use_stops_two_workers_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, stderr, elapsed = serve(tmp_path, "--port", str(port), "--workers", "2")
    assert code == 3 and elapsed < 15
    assert stderr.strip().splitlines() == [
        f"portico: cannot start: cannot listen on 127.0.0.1:{port} (Address already in use); "
        "stop the process that holds it, or choose another with --port"
    ]


def test_an_unusable_secret_key_stops_two_workers_with_the_reason_and_the_remedy(tmp_path: Path) -> None:
    (tmp_path / "secret.key").mkdir()  # a key file that cannot be read (root ignores permission bits)
    env = {"PORTICO_SECRET_KEY": ""}
    code, stderr, elapsed = serve(tmp_path, "--port", str(free_port()), "--workers", "2", env=env)
    assert code == 3 and elapsed < 20, stderr
    reasons = [line for line in stderr.splitlines() if line.startswith("portico: cannot start")]
    assert reasons, stderr
    assert f"Is a directory: {tmp_path}/secret.key" in reasons[0]
    assert "set PORTICO_SECRET_KEY to a Fernet key" in reasons[0]
    assert_clean(stderr)


def test_one_worker_fails_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "secret.key").mkdir()
    code, stderr, elapsed = serve(tmp_path, "--port", str(free_port()), env={"PORTICO_SECRET_KEY": ""})
    assert code == 3 and elapsed < 20
    assert [line for line in stderr.splitlines() if line.startswith("portico: cannot start")], stderr
    assert_clean(stderr)


def test_a_broken_provider_plugin_is_refused_by_the_check_and_by_serve(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "portico_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: portico-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[portico]\nbroken = portico_broken_plugin\n")
    (site / "portico_broken_plugin.py").write_text("import no_such_module_h10\n")
    env = {"PYTHONPATH": str(site)}
    code, stderr, elapsed = serve(tmp_path, "--port", str(free_port()), "--workers", "2", env=env)
    expected = "providers: a provider plugin failed to load (ModuleNotFoundError: No module named 'no_such_module_h10')"
    assert code == 2 and elapsed < 20
    assert stderr.strip().splitlines() == [f"config error: {expected}"]
    checked = subprocess.run(
        [*PORTICO, "check-config", str(tmp_path / "portico.yaml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert checked.returncode == 1 and expected in checked.stderr
