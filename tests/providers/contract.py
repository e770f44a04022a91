"""The provider contract: scenarios every adapter must pass end to end (openai SDK → gateway → mock upstream).

Each provider contributes one `ContractCase` in `tests/providers/cases_<provider>.py` (a module-level `CASE`):
how to mount its mock upstream, its provider config entry, the model to ask for, and small inspectors that read
the request the upstream received *in that provider's wire format*. `test_contract.py` runs every scenario
against every case.

The mock upstreams all follow the same script so the scenarios can be written once:
- the reply text is `Echo from <upstream model>: <last user text>`; once the history holds a tool result, it
  is `Tool result: <that result>` instead;
- when tools are offered and no tool result is in the history yet, the reply is one call of the first tool
  with arguments `{"city": "Paris"}` (finish reason: tool calls);
- when reasoning/thinking is requested, the reply carries reasoning text `Let me think.` with signature
  `sig-1` (where the provider has signatures);
- usage is always reported (non-zero);
- `state.take_failure(model)` scripts an error in the provider's own error format (with `retry-after`);
- mode `cut_after` N: the stream ends after N events without the provider's end marker; mode `inband_error` N:
  after N events the provider's in-band error event is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.upstreams.server import Installer


@dataclass(frozen=True)
class Inspectors:
    """Read the upstream request body (decoded JSON) the way the provider's wire format holds it."""

    system: Callable[[Any], str]
    """All system/developer instructions the upstream received, joined."""
    roles: Callable[[Any], list[str]]
    """Conversation turn roles in order, normalised to `user` / `assistant` (tool results count as the turn
    the provider puts them in)."""
    tool_results: Callable[[Any], list[str]]
    """Every tool-result text sent back to the model."""
    has_image: Callable[[Any], bool]
    wants_json: Callable[[Any], bool]
    """True if the request asks for JSON output (native JSON mode, a schema, or a prefill the adapter uses)."""
    max_tokens: Callable[[Any], int | None]
    reasoning_requested: Callable[[Any], bool] = lambda body: False
    """True if the upstream was asked to reason/think."""
    reasoning_history: Callable[[Any], list[str]] = lambda body: []
    """Signatures (or reasoning texts if the provider has no signatures) of prior reasoning sent back."""


@dataclass(frozen=True)
class ContractCase:
    name: str
    """Provider name in the gateway config (also the model prefix)."""
    install: Installer
    provider_config: Callable[[str], dict[str, Any]]
    """Mock upstream base URL → the provider's config entry."""
    model: str
    """The model part after `<name>/`."""
    inspect: Inspectors
    supports_images: bool = True
    supports_json_mode: bool = True
    supports_reasoning: bool = False
    upstream_model: Callable[[Any, str], str] = lambda request, model: model
    """(recorded upstream request, requested model) → the model name the upstream saw (for URL-routed APIs)."""
    status_on_upstream_401: int = 401
    extra: dict[str, Any] = field(default_factory=dict)
