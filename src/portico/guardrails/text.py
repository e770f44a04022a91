"""Checks on the plain text: regex match / deny, word lists (contains / not contains), length bounds.

Each compiles what it needs once, when the guardrail is built; a check is then a scan of the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from portico.guardrails.base import PASSED, GuardContext, GuardrailConfigError, Span, Verdict


def _pattern(params: Mapping[str, Any], kind: str) -> re.Pattern[str]:
    rule = params.get("pattern", params.get("rule"))
    if not isinstance(rule, str) or not rule:
        raise GuardrailConfigError(f"{kind}: 'pattern' must be a non-empty regular expression")
    flags = re.IGNORECASE if params.get("ignore_case") else 0
    try:
        return re.compile(rule, flags)
    except re.error as exc:
        raise GuardrailConfigError(f"{kind}: 'pattern' is not a valid regular expression ({exc})") from None


class RegexDeny:
    """Fails when the pattern occurs anywhere in the text."""

    kind = "regex_deny"

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.pattern = _pattern(params, self.kind)

    async def check(self, text: str, context: GuardContext) -> Verdict:
        spans = tuple(Span(m.start(), m.end(), "pattern") for m in self.pattern.finditer(text))
        if not spans:
            return PASSED
        return Verdict(False, f"the text matches the denied pattern /{self.pattern.pattern}/", spans)


class RegexMatch:
    """Passes only when the pattern occurs in the text (Portkey's `regexMatch`; `not: true` inverts it)."""

    kind = "regex_match"

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.pattern = _pattern(params, self.kind)
        self.invert = bool(params.get("not", False))

    async def check(self, text: str, context: GuardContext) -> Verdict:
        found = self.pattern.search(text)
        if (found is not None) != self.invert:
            return PASSED
        if found is None:
            return Verdict(False, f"the text does not match /{self.pattern.pattern}/")
        return Verdict(False, f"the text matches /{self.pattern.pattern}/", (Span(*found.span(), "pattern"),))


class Contains:
    """Word lists: `operator` any (at least one word must occur), all (every word), none (no word may occur)."""

    kind = "contains"

    def __init__(self, params: Mapping[str, Any]) -> None:
        words = params.get("words")
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
            raise GuardrailConfigError("contains: 'words' must be a non-empty list of strings")
        self.operator = params.get("operator", "any")
        if self.operator not in ("any", "all", "none"):
            raise GuardrailConfigError("contains: 'operator' must be any, all or none")
        flags = 0 if params.get("case_sensitive") else re.IGNORECASE
        self.words = tuple(words)
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        self.pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", flags)

    async def check(self, text: str, context: GuardContext) -> Verdict:
        matches = list(self.pattern.finditer(text))
        spans = tuple(Span(m.start(), m.end(), "word") for m in matches)
        if self.operator == "none":
            return PASSED if not spans else Verdict(False, "the text contains a denied word", spans)
        if self.operator == "any":
            return PASSED if spans else Verdict(False, f"the text contains none of {list(self.words)}")
        seen = {m.group().casefold() for m in matches}
        missing = [w for w in self.words if w.casefold() not in seen]
        return PASSED if not missing else Verdict(False, f"the text lacks {missing}")


class Length:
    """Bounds on the length, counted in `unit` characters (default), words or sentences."""

    kind = "length"

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.unit = params.get("unit", "characters")
        if self.unit not in ("characters", "words", "sentences"):
            raise GuardrailConfigError("length: 'unit' must be characters, words or sentences")
        self.min = params.get("min", 0)
        self.max = params.get("max")
        if not isinstance(self.min, int) or (self.max is not None and not isinstance(self.max, int)):
            raise GuardrailConfigError("length: 'min' and 'max' must be integers")
        if self.max is not None and self.max < self.min:
            raise GuardrailConfigError("length: 'max' is below 'min'")

    async def check(self, text: str, context: GuardContext) -> Verdict:
        if self.unit == "characters":
            size = len(text)
        elif self.unit == "words":
            size = len(text.split())
        else:
            size = len([s for s in re.split(r"[.!?]+(?:\s|$)", text) if s.strip()])
        if size < self.min:
            return Verdict(False, f"the text has {size} {self.unit}, fewer than {self.min}")
        if self.max is not None and size > self.max:
            return Verdict(False, f"the text has {size} {self.unit}, more than {self.max}")
        return PASSED
