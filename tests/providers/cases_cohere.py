"""Cohere Chat v2 (`POST /v2/chat`) as a contract case."""

from __future__ import annotations

from typing import Any

from tests.providers.contract import ContractCase, Inspectors
from tests.upstreams import cohere as upstream


def _messages(body: Any) -> list[dict[str, Any]]:
    return list(body.get("messages") or [])


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(i.get("text", "")) for i in content if i.get("type") == "text")
    return str(content or "")


CASE = ContractCase(
    name="cohere",
    install=upstream.install,
    provider_config=lambda url: {"api_key": "co-upstream-key", "base_url": url},
    model="command-a-03-2025",
    inspect=Inspectors(
        system=lambda b: " ".join(_text(m["content"]) for m in _messages(b) if m["role"] == "system"),
        roles=lambda b: [
            "assistant" if m["role"] == "assistant" else "user" for m in _messages(b) if m["role"] != "system"
        ],
        tool_results=lambda b: [_text(m["content"]) for m in _messages(b) if m["role"] == "tool"],
        has_image=lambda b: any(
            isinstance(m.get("content"), list) and any(i.get("type") == "image_url" for i in m["content"])
            for m in _messages(b)
        ),
        wants_json=lambda b: (b.get("response_format") or {}).get("type") == "json_object",
        max_tokens=lambda b: b.get("max_tokens"),
        reasoning_requested=lambda b: (b.get("thinking") or {}).get("type") == "enabled",
        reasoning_history=lambda b: [
            str(i.get("thinking"))
            for m in _messages(b)
            if m["role"] == "assistant" and isinstance(m.get("content"), list)
            for i in m["content"]
            if i.get("type") == "thinking"
        ],
    ),
    supports_reasoning=True,
)
