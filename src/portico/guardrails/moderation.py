"""The local moderation default: word lists per category, matched on whole words, case-insensitively.

A heuristic, not a classifier: it catches explicit terms and says which ones; it is what `orq_sexual_moderation` /
`orq_harmful_moderation` run. `words` adds terms. A stored guardrail can use a provider's `/moderations` instead
(`ProviderModeration`, a `moderation` check with a `provider` parameter).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from portico.guardrails.base import PASSED, GuardContext, GuardrailConfigError, Span, Verdict

LEXICONS: dict[str, tuple[str, ...]] = {
    "sexual": (
        "porn", "porno", "pornography", "pornographic", "nude", "nudes", "naked", "sex", "sexual", "sexually",
        "explicit sex", "erotic", "erotica", "orgasm", "orgy", "genitals", "masturbate", "masturbation", "nsfw",
        "blowjob", "hentai", "fetish", "xxx", "stripper", "escort service",
    ),
    "harmful": (
        "kill", "killing", "murder", "suicide", "kill myself", "self-harm", "self harm", "bomb", "make a bomb",
        "build a bomb", "explosive", "explosives", "terrorist", "terrorism", "massacre", "shoot up", "poison",
        "behead", "genocide", "torture", "meth", "methamphetamine", "nerve agent", "bioweapon", "ransomware",
        "kidnap", "hate crime",
    ),
}  # fmt: skip


class Moderation:
    kind = "moderation"

    def __init__(self, params: Mapping[str, Any]) -> None:
        category = params.get("category")
        if category not in LEXICONS:
            raise GuardrailConfigError(f"moderation: 'category' must be one of {sorted(LEXICONS)}")
        extra = params.get("words") or []
        if not isinstance(extra, list) or not all(isinstance(w, str) and w for w in extra):
            raise GuardrailConfigError("moderation: 'words' must be a list of strings")
        self.category = category
        words = sorted({*LEXICONS[category], *extra}, key=len, reverse=True)
        self.pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)

    async def check(self, text: str, context: GuardContext) -> Verdict:
        spans = tuple(Span(m.start(), m.end(), self.category) for m in self.pattern.finditer(text))
        if not spans:
            return PASSED
        terms = sorted({text[s.start : s.end].lower() for s in spans})
        return Verdict(False, f"{self.category} content flagged ({', '.join(terms)})", spans)


Moderator = Callable[[str, str, str, float], Awaitable[Mapping[str, Any]]]
"""(provider, model, text, timeout in seconds) → one OpenAI-shaped moderation result `{flagged, categories,
category_scores}`; raises on any failure. Injected: this layer opens no connection."""

PROVIDER_CATEGORIES: dict[str, tuple[str, ...]] = {
    "sexual": ("sexual", "sexual/minors"),
    "harmful": (
        "violence", "violence/graphic", "self-harm", "self-harm/intent", "self-harm/instructions", "hate",
        "hate/threatening", "harassment/threatening", "illicit", "illicit/violent",
    ),
}  # fmt: skip


class ProviderModeration:
    """Moderation by a configured provider's `/moderations` endpoint (OpenAI's shape): fails when a category of
    `category` is flagged or scores at least `threshold`. A failed call refuses (`on_error: deny`) or passes."""

    kind = "moderation"

    def __init__(self, params: Mapping[str, Any], moderate: Moderator | None) -> None:
        category = params.get("category")
        if category not in PROVIDER_CATEGORIES:
            raise GuardrailConfigError(f"moderation: 'category' must be one of {sorted(PROVIDER_CATEGORIES)}")
        provider, model = params.get("provider"), params.get("model", "omni-moderation-latest")
        if not isinstance(provider, str) or not provider or not isinstance(model, str):
            raise GuardrailConfigError("moderation: 'provider' and 'model' must be strings")
        threshold = params.get("threshold", 0.5)
        if not isinstance(threshold, int | float) or not 0 < threshold <= 1:
            raise GuardrailConfigError("moderation: 'threshold' must be in (0, 1]")
        if params.get("on_error", "deny") not in ("allow", "deny"):
            raise GuardrailConfigError("moderation: 'on_error' must be allow or deny")
        self.category, self.provider, self.model, self.threshold = category, provider, model, float(threshold)
        self.fail_open = params.get("on_error") == "allow"
        self.timeout_s = float(params.get("timeout_ms", 5000)) / 1000
        self.moderate = moderate

    async def check(self, text: str, context: GuardContext) -> Verdict:
        try:
            if self.moderate is None:
                raise RuntimeError("no moderation client")
            result = await self.moderate(self.provider, self.model, text, self.timeout_s)
            flags, scores = result.get("categories") or {}, result.get("category_scores") or {}
        except Exception as exc:  # every failure of the call is the configured failure mode
            why = f"the moderation call to '{self.provider}' failed ({type(exc).__name__})"
            return Verdict(True, f"{why}; allowed") if self.fail_open else Verdict(False, f"{why}; refused")
        hits = [c for c in PROVIDER_CATEGORIES[self.category] if flags.get(c) or (scores.get(c) or 0) >= self.threshold]
        if not hits:
            return PASSED
        return Verdict(False, f"{self.category} content flagged by {self.provider} ({', '.join(hits)})")
