"""Google Gemini (Generative Language API, native `generateContent`) as a contract case."""

from __future__ import annotations

import json
from typing import Any

from tests.providers.contract import ContractCase, Inspectors
from tests.upstreams import gemini as upstream


def _parts(body: Any, role: str | None = None) -> list[dict[str, Any]]:
    return [p for c in body.get("contents") or [] if role in (None, c.get("role")) for p in c.get("parts") or []]


def _result(part: dict[str, Any]) -> str:
    response = part["functionResponse"]["response"]
    return str(response["output"]) if "output" in response else json.dumps(response)


def _config(body: Any) -> dict[str, Any]:
    return body.get("generationConfig") or {}


CASE = ContractCase(
    name="gemini",
    install=upstream.install,
    provider_config=lambda url: {"api_key": "gemini-upstream-key", "base_url": url},
    model="gemini-2.5-flash",
    inspect=Inspectors(
        system=lambda b: " ".join(upstream.text_parts(b.get("systemInstruction"))),
        roles=upstream.contents_roles,
        tool_results=lambda b: [_result(p) for p in _parts(b) if "functionResponse" in p],
        has_image=lambda b: any(
            str((p.get("inlineData") or p.get("fileData") or {}).get("mimeType", "")).startswith("image/")
            for p in _parts(b)
        ),
        wants_json=lambda b: _config(b).get("responseMimeType") == "application/json",
        max_tokens=lambda b: _config(b).get("maxOutputTokens"),
        reasoning_requested=lambda b: bool((_config(b).get("thinkingConfig") or {}).get("includeThoughts")),
        reasoning_history=lambda b: [p["thoughtSignature"] for p in _parts(b, "model") if "thoughtSignature" in p],
    ),
    supports_reasoning=True,
    upstream_model=lambda request, model: str(request["model"]),
)
