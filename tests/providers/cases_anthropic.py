"""Anthropic Messages (`POST /v1/messages`) as a contract case."""

from __future__ import annotations

from typing import Any

from portico.providers.anthropic_stream import JSON_TOOL
from tests.providers.contract import ContractCase, Inspectors
from tests.upstreams import anthropic as upstream


def _blocks(body: Any, role: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        if role in (None, message["role"]):
            content = message["content"]
            out.extend([{"type": "text", "text": content}] if isinstance(content, str) else content)
    return out


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    return str(content or "")


def _wants_json(body: Any) -> bool:
    forced = (body.get("tool_choice") or {}).get("name") == JSON_TOOL
    return forced or "JSON" in _text(body.get("system"))


CASE = ContractCase(
    name="anthropic",
    install=upstream.install,
    provider_config=lambda url: {"api_key": upstream.API_KEY, "base_url": url},
    model="claude-sonnet-4-5",
    inspect=Inspectors(
        system=lambda b: _text(b.get("system")),
        roles=lambda b: [m["role"] for m in b.get("messages") or []],
        tool_results=lambda b: [_text(x.get("content")) for x in _blocks(b, "user") if x["type"] == "tool_result"],
        has_image=lambda b: any(x["type"] == "image" for x in _blocks(b, "user")),
        wants_json=_wants_json,
        max_tokens=lambda b: b.get("max_tokens"),
        reasoning_requested=lambda b: (b.get("thinking") or {}).get("type") == "enabled",
        reasoning_history=lambda b: [str(x["signature"]) for x in _blocks(b, "assistant") if x["type"] == "thinking"],
    ),
    supports_reasoning=True,
)
