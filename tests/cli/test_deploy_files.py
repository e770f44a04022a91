"""The container files an operator runs (docker is not available here, so their content is checked): compose
starts PostgreSQL, Redis and two gateways whose config passes `check-config`; the image is non-root with a
liveness health check; LICENSE is the licence pyproject declares."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_two_gateways_on_postgres_and_redis() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "gateway-1", "gateway-2"}
    for name in ("gateway-1", "gateway-2"):
        gateway = services[name]
        assert gateway["build"] == "." and "./deploy/portico.yaml:/etc/portico/portico.yaml:ro" in gateway["volumes"]
        assert gateway["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    assert {services[name]["ports"][0] for name in ("gateway-1", "gateway-2")} == {"8081:8080", "8082:8080"}


def test_the_compose_config_passes_check_config_once_its_secrets_are_set() -> None:
    config = str(ROOT / "deploy" / "portico.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("PORTICO_API_KEY", "POSTGRES_PASSWORD")}
    command = [sys.executable, "-m", "portico.cli", "check-config", config]
    bare = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert bare.returncode == 1 and "environment variable POSTGRES_PASSWORD is not set" in bare.stderr
    env |= {"PORTICO_API_KEY": "sk-portico-x", "POSTGRES_PASSWORD": "pw"}
    ok = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert ok.returncode == 0, ok.stderr


def test_the_image_runs_unprivileged_with_a_liveness_check() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["portico"]
    healthcheck = " ".join(lines[lines.index(next(x for x in lines if x.startswith("HEALTHCHECK"))) :][:2])
    assert "/health/live" in healthcheck
    assert 'ENTRYPOINT ["portico"]' in lines


def test_license_matches_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == "Apache-2.0" and "Apache License" in text and "Version 2.0, January 2004" in text
