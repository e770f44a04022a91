"""OpenAI Chat Completions as a contract case: the reference every native adapter is measured against."""

from __future__ import annotations

from typing import Any

from tests.providers.contract import ContractCase, Inspectors
from tests.upstreams import openai as upstream


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _messages(body: Any) -> list[dict[str, Any]]:
    return list(body.get("messages") or [])


CASE = ContractCase(
    name="openai",
    install=upstream.install,
    provider_config=lambda url: {"api_key": "sk-upstream", "base_url": f"{url}/v1"},
    model="gpt-4o",
    inspect=Inspectors(
        system=lambda b: " ".join(
            _text(m.get("content")) for m in _messages(b) if m["role"] in ("system", "developer")
        ),
        roles=lambda b: [
            "assistant" if m["role"] == "assistant" else "user"
            for m in _messages(b)
            if m["role"] not in ("system", "developer")
        ],
        tool_results=lambda b: [_text(m.get("content")) for m in _messages(b) if m["role"] == "tool"],
        has_image=lambda b: any(
            isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"])
            for m in _messages(b)
        ),
        wants_json=lambda b: (b.get("response_format") or {}).get("type") in ("json_object", "json_schema"),
        max_tokens=lambda b: b.get("max_completion_tokens") or b.get("max_tokens"),
    ),
)
