"""Validate what the gateway sends against the response schemas in `../shared/spec/` (the contract, parsed as-is)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_DIR = Path(__file__).resolve().parent / "fixtures" / "spec"
"""A verbatim copy of the contract documents from `../shared/spec/`, so CI on a bare clone validates against them."""


@functools.cache
def _document(name: str) -> dict[str, Any]:
    text = (SPEC_DIR / name).read_text()
    match = re.search(r"````yaml[^\n]*\n(.*?)\n````", text, re.S)
    assert match, f"no OpenAPI block in {name}"
    loaded: dict[str, Any] = yaml.safe_load(match.group(1))
    return loaded


def _response_schema(name: str, path: str, status: str, content_type: str) -> dict[str, Any]:
    document = _document(name)
    schema = document["paths"][path]["post"]["responses"][status]["content"][content_type]["schema"]
    # Keep components reachable so local `$ref`s resolve against the same document.
    return {**schema, "components": document.get("components", {})}


def _validate(instance: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)


def validate_completion(body: Any) -> None:
    """A non-streaming answer, against the orq router's 200 `application/json` schema."""
    _validate(
        body,
        _response_schema(
            "orq-router-chat-completions.openapi.md", "/v2/router/chat/completions", "200", "application/json"
        ),
    )


def validate_chunk(chunk: Any) -> None:
    """One streamed chunk, against the orq router's 200 `text/event-stream` schema."""
    _validate(
        chunk,
        _response_schema(
            "orq-router-chat-completions.openapi.md", "/v2/router/chat/completions", "200", "text/event-stream"
        ),
    )


def validate_portkey_completion(body: Any) -> None:
    _validate(
        body, _response_schema("portkey-chat-completions.openapi.md", "/chat/completions", "200", "application/json")
    )


def validate_vllm_completion(body: Any) -> None:
    _validate(
        body,
        _response_schema("vllm-wandb-chat-completions.openapi.md", "/v1/chat/completions/", "200", "application/json"),
    )


def validate_vllm_422(body: Any) -> None:
    _validate(
        body,
        _response_schema("vllm-wandb-chat-completions.openapi.md", "/v1/chat/completions/", "422", "application/json"),
    )
