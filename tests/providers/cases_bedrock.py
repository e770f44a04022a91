"""AWS Bedrock Converse as a contract case: SigV4-signed calls to a mock that verifies the signature."""

from __future__ import annotations

from typing import Any

from portico.providers.bedrock_stream import JSON_TOOL
from tests.providers.contract import ContractCase, Inspectors
from tests.upstreams import bedrock as upstream


def _blocks(body: Any, role: str | None = None) -> list[dict[str, Any]]:
    return [b for m in body.get("messages") or [] if role in (None, m["role"]) for b in m["content"]]


def _signatures(body: Any) -> list[str]:
    return [
        b["reasoningContent"]["reasoningText"].get("signature", "")
        for b in _blocks(body, "assistant")
        if "reasoningText" in b.get("reasoningContent", {})
    ]


CASE = ContractCase(
    name="bedrock",
    install=upstream.install,
    provider_config=lambda url: {
        "base_url": url,
        "region": upstream.REGION,
        "aws_access_key_id": upstream.ACCESS_KEY,
        "aws_secret_access_key": upstream.SECRET_KEY,
    },
    model="anthropic.claude-3-5-sonnet-20241022-v2:0",
    inspect=Inspectors(
        system=lambda b: " ".join(s.get("text", "") for s in b.get("system") or []),
        roles=lambda b: [m["role"] for m in b.get("messages") or []],
        tool_results=lambda b: [
            " ".join(c.get("text", "") for c in blk["toolResult"]["content"])
            for blk in _blocks(b)
            if "toolResult" in blk
        ],
        has_image=lambda b: any("image" in blk for blk in _blocks(b, "user")),
        wants_json=lambda b: (b.get("toolConfig") or {}).get("toolChoice") == {"tool": {"name": JSON_TOOL}},
        max_tokens=lambda b: (b.get("inferenceConfig") or {}).get("maxTokens"),
        reasoning_requested=lambda b: (
            ((b.get("additionalModelRequestFields") or {}).get("thinking") or {}).get("type") == "enabled"
        ),
        reasoning_history=_signatures,
    ),
    supports_reasoning=True,
    upstream_model=lambda request, model: request["model"],
)
