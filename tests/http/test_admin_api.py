"""The admin API over HTTP: one gateway-key check and one error shape on every non-chat route, as /docs says."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from portico.http.routes.admin import create_admin_app
from tests.conftest import KEY, Response, Stack, http, stack_settings
from tests.gateway_server import GatewayThread
from tests.spec_schemas import validate_vllm_422

KNOWN_ROUTES = {
    ("GET", "/v1/logs"),
    ("GET", "/v1/logs/{request_id}"),
    ("POST", "/v1/admin/virtual-keys"),
    ("GET", "/v1/admin/virtual-keys"),
    ("DELETE", "/v1/admin/virtual-keys/{key_id}"),
    ("GET", "/v1/admin/configs"),
    ("PUT", "/v1/admin/configs/{config_id}"),
    ("GET", "/v1/admin/configs/{config_id}"),
    ("DELETE", "/v1/admin/configs/{config_id}"),
}


def call(stack: Stack, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    sent = {"content-type": "application/json", **(headers or {})} if raw is not None else dict(headers or {})
    return http(method, stack.gateway.url + path, raw, sent)


def as_admin(stack: Stack, method: str, path: str, body: Any = None) -> Response:
    return call(stack, method, path, body, {"authorization": f"Bearer {KEY}"})


def error_of(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The gateway's error shape, and nothing of FastAPI's bare `{"detail": "..."}`."""
    assert response.status == status, response.body
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if code is not None:
        assert error["code"] == code, error
    assert not isinstance(body.get("detail"), str), body
    return body


def admin_routes(stack: Stack) -> set[tuple[str, str]]:
    spec = stack.get("/openapi.json", key=None).json()
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith(("/v1/admin", "/v1/logs"))
        for method in item
    }


def test_every_admin_route_refuses_a_request_without_the_gateway_key(stack: Stack) -> None:
    routes = admin_routes(stack)
    assert routes >= KNOWN_ROUTES  # a new route is covered here without being listed
    for method, template in sorted(routes):
        path = re.sub(r"\{[a-z_]+\}", "x-1", template)
        body = {"provider": "openai"} if method in ("POST", "PUT") else None
        missing = error_of(call(stack, method, path, body), 401, "invalid_api_key")
        assert missing["error"]["type"] == "authentication_error", (method, path)
        wrong = call(stack, method, path, body, {"authorization": "Bearer sk-wrong"})
        assert error_of(wrong, 401, "invalid_api_key")["error"]["message"] == "Invalid API key."
        assert wrong.headers["www-authenticate"] == "Bearer"


def test_both_key_headers_the_chat_path_accepts_open_the_admin_api(stack: Stack) -> None:
    assert as_admin(stack, "GET", "/v1/admin/configs").status == 200
    portkey = call(stack, "GET", "/v1/admin/configs", headers={"x-portkey-api-key": KEY})
    assert portkey.status == 200, portkey.body
    placeholder = {"x-portkey-api-key": KEY, "authorization": "Bearer PORTKEY_PLACEHOLDER"}
    assert call(stack, "GET", "/v1/logs", headers=placeholder).status == 200


def test_the_public_routes_stay_open(stack: Stack) -> None:
    for path in ("/health", "/docs", "/openapi.json", "/metrics", "/v1/models"):
        assert stack.get(path, key=None).status == 200, path


def test_a_body_that_breaks_the_schema_is_422_in_both_shapes(stack: Stack) -> None:
    missing = error_of(as_admin(stack, "POST", "/v1/admin/virtual-keys", {"api_key": "sk-x"}), 422, "validation_error")
    validate_vllm_422(missing)
    assert missing["detail"][0]["loc"] == ["body", "provider"]
    assert missing["error"]["param"] == "provider" and missing["error"]["type"] == "invalid_request_error"
    bad_id = error_of(as_admin(stack, "POST", "/v1/admin/virtual-keys", {"provider": "openai", "id": "a b"}), 422)
    assert bad_id["detail"][0]["loc"] == ["body", "id"]
    not_object = error_of(as_admin(stack, "PUT", "/v1/admin/configs/pc-1", [1, 2]), 422, "validation_error")
    assert not_object["detail"][0]["loc"] == ["body"]
    query = error_of(as_admin(stack, "GET", "/v1/logs?limit=0"), 422, "validation_error")
    assert query["detail"][0]["loc"] == ["query", "limit"] and query["error"]["param"] == "limit"


def test_the_gateway_own_refusals_share_the_shape(stack: Stack) -> None:
    unknown = error_of(as_admin(stack, "POST", "/v1/admin/virtual-keys", {"provider": "nope"}), 422)
    assert unknown["detail"][0]["loc"] == ["body", "provider"] and "nope" in unknown["error"]["message"]
    config = error_of(as_admin(stack, "PUT", "/v1/admin/configs/pc-1", {"retry": {"attempts": 99}}), 422)
    assert "x-portkey-config" in config["error"]["message"]
    raw = error_of(as_admin(stack, "POST", "/v1/admin/virtual-keys", b"{not json"), 400, "invalid_json")
    assert "detail" not in raw
    error_of(as_admin(stack, "GET", "/v1/admin/configs/pc-missing"), 404, "config_not_found")
    error_of(as_admin(stack, "DELETE", "/v1/admin/virtual-keys/vk-missing"), 404, "virtual_key_not_found")
    error_of(as_admin(stack, "GET", "/v1/logs/no-such-request"), 404, "log_not_found")


def test_a_second_key_with_the_same_id_is_a_409(stack: Stack) -> None:
    key_id = f"vk-{uuid.uuid4().hex[:12]}"
    body = {"provider": "openai", "api_key": "sk-admin-test-123456", "id": key_id}
    assert as_admin(stack, "POST", "/v1/admin/virtual-keys", body).status == 201
    try:
        conflict = error_of(as_admin(stack, "POST", "/v1/admin/virtual-keys", body), 409, "virtual_key_exists")
        assert conflict["error"]["param"] == "id" and b"sk-admin-test" not in json.dumps(conflict).encode()
    finally:
        assert as_admin(stack, "DELETE", f"/v1/admin/virtual-keys/{key_id}").status == 204


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/admin/nope", "/v2/router/nope", "/"])
def test_an_unknown_path_is_404_in_the_shape(stack: Stack, path: str) -> None:
    body = error_of(as_admin(stack, "GET", path), 404, "not_found")
    assert body["error"]["type"] == "not_found_error" and path in body["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/admin/virtual-keys", "GET, POST"),
        ("POST", "/v1/logs", "GET"),
        ("GET", "/v1/chat/completions", "POST"),
        ("DELETE", "/health", "GET"),
    ],
)
def test_a_wrong_method_is_405_in_the_shape(stack: Stack, method: str, path: str, allowed: str) -> None:
    response = as_admin(stack, method, path)
    body = error_of(response, 405, "method_not_allowed")
    assert method in body["error"]["message"] or path in body["error"]["message"]
    offered = set(response.headers["allow"].split(", "))  # Starlette names the first matching route's methods
    assert offered and offered <= set(allowed.split(", ")) and method not in offered


def test_openapi_declares_the_security_schemes_and_the_error_schema(stack: Stack) -> None:
    spec = stack.get("/openapi.json", key=None).json()
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["HTTPBearer"].items()
    assert {"type": "apiKey", "in": "header", "name": "x-portkey-api-key"}.items() <= schemes["APIKeyHeader"].items()
    schemas = spec["components"]["schemas"]
    assert set(schemas["ErrorDetail"]["required"]) == {"message", "type"}
    assert set(schemas["ValidationErrorBody"]["required"]) == {"detail", "error"}
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape is never answered, so never documented
    for method, template in KNOWN_ROUTES:
        operation = spec["paths"][template][method.lower()]
        assert {"HTTPBearer": []} in operation["security"] and {"APIKeyHeader": []} in operation["security"]
        responses = operation["responses"]
        assert _ref(responses["401"]) == "#/components/schemas/ErrorBody", (method, template)
        if "422" in responses:
            assert _ref(responses["422"]) == "#/components/schemas/ValidationErrorBody"
    assert "security" not in spec["paths"]["/health"]["get"]
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert {"HTTPBearer": []} in chat["security"] and {"APIKeyHeader": []} in chat["security"]
    assert _ref(chat["responses"]["422"]).endswith("/ValidationErrorBody")
    assert _ref(chat["responses"]["502"]).endswith("/ErrorBody")
    assert "upstream_status" in schemas["ErrorDetail"]["properties"]
    assert _ref(spec["paths"]["/v1/admin/configs/{config_id}"]["get"]["responses"]["404"]).endswith("/ErrorBody")


def _ref(response: dict[str, Any]) -> str:
    return str(response["content"]["application/json"]["schema"]["$ref"])


@pytest.fixture(scope="module")
def open_gateway(upstream_thread: Any) -> Iterator[GatewayThread]:
    with GatewayThread(stack_settings(upstream_thread.url, auth={"keys": []})) as gateway:
        yield gateway


def test_an_open_gateway_leaves_the_admin_api_open(open_gateway: GatewayThread) -> None:
    assert http("GET", open_gateway.url + "/v1/admin/configs").status == 200
    assert http("GET", open_gateway.url + "/v1/logs?limit=1").status == 200
    missing = http("GET", open_gateway.url + "/v1/logs/no-such-request")
    assert missing.status == 404 and missing.json()["error"]["code"] == "log_not_found"


def test_a_bug_behind_an_admin_route_is_a_500_in_the_shape(caplog: pytest.LogCaptureFixture) -> None:
    app = create_admin_app(health=lambda: {"ready": True}, models=lambda: [{"id": str(1 // 0)}])
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/v1/models")
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["type"] == "internal_error" and "gateway log" in error["message"]
    assert "Traceback" not in answer.text and "ZeroDivisionError" not in answer.text
    assert any("unhandled error serving GET /v1/models" in r.getMessage() for r in caplog.records)


def test_an_http_exception_raised_by_a_route_keeps_its_status_message_and_headers() -> None:
    app = create_admin_app(health=lambda: {"ready": True}, models=list)

    @app.get("/raises/{status}")
    async def raises(status: int) -> None:
        raise HTTPException(status, f"route said {status}", headers={"x-extra": "kept"})

    with TestClient(app) as client:
        teapot, missing = client.get("/raises/418"), client.get("/raises/404")
    assert teapot.status_code == 418 and teapot.headers["x-extra"] == "kept"
    assert teapot.json() == {
        "error": {"message": "route said 418", "type": "invalid_request_error", "param": None, "code": "http_418"}
    }
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "route said 404"
    assert missing.json()["error"]["code"] == "not_found"
