"""PII detection: candidate patterns confirmed by their checksums (Luhn, IBAN mod 97, BSN 11-check, SSN ranges).

A candidate whose checksum fails is not PII: a look-alike number must never be blocked or redacted. Entities are
scanned in `ENTITIES` order and a later match that overlaps an earlier one is dropped, so a card number is never
also reported as a phone number.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from portico.guardrails.base import PASSED, GuardContext, GuardrailConfigError, Span, Verdict

# Lengths of the IBANs of the countries most often seen; other countries are held to the ISO 13616 bounds.
_IBAN_LENGTHS = {
    "AT": 20, "BE": 16, "CH": 21, "CZ": 24, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "IE": 22,
    "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "SE": 24,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: str) -> bool:
    digits = re.sub(r"[ -]", "", match)
    # Issuer prefixes keep long order numbers that happen to pass Luhn (1 in 10 do) from counting as cards.
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


_IBAN_DIGITS = {ord(c): str(int(c, 36)) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def iban_valid(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    expected = _IBAN_LENGTHS.get(compact[:2])
    if (expected is not None and len(compact) != expected) or not 15 <= len(compact) <= 34:
        return False
    rotated = compact[4:] + compact[:4]
    return int(rotated.translate(_IBAN_DIGITS)) % 97 == 1


def bsn_valid(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if len(digits) != 9 or digits == "000000000":
        return False
    total = sum(int(d) * weight for d, weight in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def _ssn(value: str) -> bool:
    area, group, serial = value.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone(value: str) -> bool:
    # National numbers have 9+ digits; 8 would take every "01-12-2024" date for a phone number.
    digits = sum(c.isdigit() for c in value)
    return (8 if value.startswith("+") else 9) <= digits <= 15


def _ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _always(_: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    hints: tuple[str, ...] = ()
    """Substrings of which the text must hold one for the entity to be possible; () means a digit is needed."""


# A candidate starts and ends at a boundary that is not inside a longer number or address: "0399 9484" inside a
# card number is not a phone number. Patterns that can start with their first digit check the boundary after it
# (`_AFTER_DIGIT`): a pattern that begins with a character class lets `re` skip ahead to candidates, where a
# leading lookbehind is tried at every position of the text (10 µs per 300 characters per entity here).
_D = r"(?<![\w.+-])(?<!\d[ .-])"
_AFTER_DIGIT = r"\d(?<![\w.+-]\d)(?<!\d[ .-]\d)"
_DIGIT = re.compile(r"\d")
ENTITIES: tuple[Entity, ...] = (
    Entity("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), _always, ("@",)),
    Entity(
        "api_key",
        re.compile(
            r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
            r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|pk_(?:live|test)_[A-Za-z0-9]{20,}"
            r"|sk_(?:live|test)_[A-Za-z0-9]{20,})"
        ),
        _always,
        ("sk-", "sk_", "pk_", "AKIA", "gh", "xox", "AIza"),
    ),
    Entity("iban", re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}\b"), iban_valid),
    Entity("credit_card", re.compile(_AFTER_DIGIT + r"(?:[ -]?\d){12,18}(?![\w-])"), _card),
    Entity("ssn", re.compile(_AFTER_DIGIT + r"\d{2}-\d{2}-\d{4}(?![\w-])"), _ssn),
    Entity("bsn", re.compile(_AFTER_DIGIT + r"(?:\d{8}|\d{3}\.\d{2}\.\d{3})(?![\w-]|\.\d)"), bsn_valid),
    Entity(
        "ip_address",
        re.compile(_D + r"(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w.:])"),
        _ip,
    ),
    Entity(
        "phone",
        re.compile(
            _D + r"(?:\+\d[\d .()/-]{6,20}\d|\(?0[1-9]\d{0,3}\)?[ .-]\d{2,8}(?:[ .-]\d{2,8}){0,4}|0[1-9]\d{8}"
            r"|\(?[2-9]\d{2}\)?[ .-]?\d{3}[ .-]\d{4})(?![\w-]|[ .]\d)"
        ),
        _phone,
    ),
)  # fmt: skip
ENTITY_NAMES = tuple(e.name for e in ENTITIES)


def select_entities(names: Iterable[str] | None) -> tuple[Entity, ...]:
    if names is None:
        return ENTITIES
    wanted = set(names)
    unknown = wanted - set(ENTITY_NAMES)
    if unknown:
        raise GuardrailConfigError(f"unknown PII entities {sorted(unknown)}; known: {', '.join(ENTITY_NAMES)}")
    return tuple(e for e in ENTITIES if e.name in wanted)


def find_pii(text: str, entities: tuple[Entity, ...] = ENTITIES) -> list[Span]:
    """Every confirmed entity in `text`, in text order, none overlapping."""
    found: list[Span] = []
    has_digit: bool | None = None
    for entity in entities:
        if entity.hints:
            if not any(hint in text for hint in entity.hints):
                continue
        else:
            if has_digit is None:
                has_digit = _DIGIT.search(text) is not None
            if not has_digit:
                continue
        for match in entity.pattern.finditer(text):
            start, end = match.span()
            if entity.valid(match.group()) and not any(s.start < end and start < s.end for s in found):
                found.append(Span(start, end, entity.name))
    found.sort(key=lambda s: s.start)
    return found


class PiiDetection:
    """Fails when the text holds any of the selected entities (all by default)."""

    kind = "pii"

    def __init__(self, params: Mapping[str, Any]) -> None:
        names = params.get("entities")
        if names is not None and not isinstance(names, list):
            raise GuardrailConfigError("pii: 'entities' must be a list of entity names")
        self.entities = select_entities(names)

    async def check(self, text: str, context: GuardContext) -> Verdict:
        spans = find_pii(text, self.entities)
        if not spans:
            return PASSED
        kinds = ", ".join(dict.fromkeys(s.kind for s in spans))
        return Verdict(False, f"personal data found ({kinds})", tuple(spans))
