"""One JSON access log line per request (method, path, status, latency, request id), on by default, in the shape
of every other log line; `logging.access_log: false` turns it off. Each line's id is the response's x-request-id."""

from __future__ import annotations

import json

import pytest

from tests.conftest import http
from tests.gateway_server import GatewayThread

CHAT = json.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}).encode()
KEYED = {"authorization": "Bearer sk-a", "content-type": "application/json"}


def access_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if '"logger":"portico.access"' in line]


def test_lines_carry_method_path_status_latency_and_the_response_id(capsys: pytest.CaptureFixture[str]) -> None:
    with GatewayThread({"auth": {"keys": ["sk-a"]}}) as gw:
        answers = [
            ("POST", "/v1/chat/completions", http("POST", f"{gw.url}/v1/chat/completions", CHAT, KEYED)),
            ("POST", "/v1/chat/completions", http("POST", f"{gw.url}/v1/chat/completions", CHAT, {})),
            ("GET", "/v1/models", http("GET", f"{gw.url}/v1/models", None, KEYED)),
            ("GET", "/no/such/path", http("GET", f"{gw.url}/no/such/path", None, KEYED)),
        ]
    lines = access_lines(capsys.readouterr().err)
    assert len(lines) == len(answers), lines
    by_id = {line["request_id"]: line for line in lines}
    for method, path, answer in answers:
        line = by_id[answer.headers["x-request-id"]]
        assert (line["method"], line["path"], line["status"]) == (method, path, answer.status)
        assert line["level"] == "INFO" and line["message"] == f"{method} {path} {answer.status}"
        assert isinstance(line["latency_ms"], float) and 0 <= line["latency_ms"] < 5000 and "ts" in line
    assert [a.status for _, _, a in answers] == [200, 401, 200, 404]


def test_it_can_be_turned_off(capsys: pytest.CaptureFixture[str]) -> None:
    with GatewayThread({"logging": {"access_log": False}}) as gw:
        assert http("POST", f"{gw.url}/v1/chat/completions", CHAT, {"content-type": "application/json"}).status == 200
        assert http("GET", f"{gw.url}/v1/models").headers["x-request-id"]
    assert access_lines(capsys.readouterr().err) == []
