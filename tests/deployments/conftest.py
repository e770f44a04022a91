"""Deployment test helpers: create deployments through the admin API, validate answers against the spec."""

from __future__ import annotations

import json
import uuid
from typing import Any

import jsonschema

from tests.conftest import KEY, Response, Stack, http
from tests.spec_schemas import _response_schema

DEPLOYMENT_SPEC = "orq-deployments-stream.openapi.md"


def validate_deployment_chunk(chunk: Any) -> None:
    """A deployment object or chunk, against the 200 `text/event-stream` schema of `/v2/deployments/stream`."""
    schema = _response_schema(DEPLOYMENT_SPEC, "/v2/deployments/stream", "200", "text/event-stream")
    jsonschema.validate(chunk, schema, cls=jsonschema.Draft202012Validator)


def new_key(prefix: str = "dep") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    answer = stack.post("/v1/admin/deployments", body)
    assert answer.status == 201, answer.body
    created: dict[str, Any] = answer.json()
    return created


def simple(key: str, **overrides: Any) -> dict[str, Any]:
    """The one-variant form from the issue."""
    body: dict[str, Any] = {
        "key": key,
        "model": "openai/gpt-4o",
        "prompt": {"messages": [{"role": "system", "content": "You help with {{topic}}."}]},
        "parameters": {"temperature": 0.2, "max_tokens": 50},
        "inputs": {"topic": "billing"},
    }
    body.update(overrides)
    return body


def put(stack: Stack, path: str, body: Any) -> Response:
    return http("PUT", stack.gateway.url + path, json.dumps(body).encode(), _headers())


def delete(stack: Stack, path: str) -> Response:
    return http("DELETE", stack.gateway.url + path, None, _headers())


def _headers() -> dict[str, str]:
    return {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
