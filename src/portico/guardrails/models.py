"""Allowed models: the request's model must be one of a list (exact ids or `provider/*` prefixes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portico.guardrails.base import PASSED, GuardContext, GuardrailConfigError, Verdict


class AllowedModels:
    kind = "allowed_models"

    def __init__(self, params: Mapping[str, Any]) -> None:
        models = params.get("models")
        if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
            raise GuardrailConfigError("allowed_models: 'models' must be a non-empty list of model ids")
        self.exact = frozenset(m for m in models if not m.endswith("*"))
        self.prefixes = tuple(m[:-1] for m in models if m.endswith("*"))
        self.invert = bool(params.get("not", False))

    async def check(self, text: str, context: GuardContext) -> Verdict:
        listed = context.model in self.exact or context.model.startswith(self.prefixes)
        if listed != self.invert:
            return PASSED
        return Verdict(False, f"the model '{context.model}' is not allowed here")
