"""Each built-in check on plain inputs, the registry's parameter errors, and the stream restorer's chunking."""

from __future__ import annotations

import random
from typing import Any

import pytest

from portico.core.types import ChatChunk
from portico.guardrails.base import GuardContext, GuardrailConfigError
from portico.guardrails.redaction import Redactor
from portico.guardrails.registry import build, build_portkey_check
from portico.pipeline.rewriting import restore_stream

INPUT = GuardContext("input", "openai/gpt-4o")


async def verdict(kind: str, params: dict[str, Any], text: str, context: GuardContext = INPUT) -> bool:
    return (await build(kind, params).check(text, context)).passed


async def test_regex_match_and_deny() -> None:
    assert await verdict("regex_match", {"pattern": r"^\{"}, '{"a": 1}')
    assert not await verdict("regex_match", {"pattern": r"^\{"}, "plain")
    assert not await verdict("regex_match", {"pattern": "secret", "not": True}, "a secret")
    deny = await build("regex_deny", {"pattern": r"\bDROP TABLE\b", "ignore_case": True}).check("drop table x", INPUT)
    assert not deny.passed and deny.spans[0].start == 0 and "DROP TABLE" in deny.reason


async def test_word_lists() -> None:
    assert await verdict("contains", {"words": ["refund", "invoice"], "operator": "any"}, "about my Invoice")
    assert not await verdict("contains", {"words": ["refund", "invoice"], "operator": "all"}, "about my invoice")
    assert not await verdict("contains", {"words": ["competitor"], "operator": "none"}, "the Competitor is")
    assert await verdict("contains", {"words": ["cat"], "operator": "none"}, "concatenate"), "whole words only"


async def test_length_bounds() -> None:
    assert await verdict("length", {"max": 5}, "12345") and not await verdict("length", {"max": 5}, "123456")
    assert not await verdict("length", {"unit": "words", "min": 3}, "two words")
    assert await verdict("length", {"unit": "sentences", "max": 2}, "One. Two!")


async def test_allowed_models() -> None:
    assert await verdict("allowed_models", {"models": ["openai/*"]}, "")
    assert not await verdict("allowed_models", {"models": ["anthropic/claude-3"]}, "")


async def test_json_schema() -> None:
    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    assert await verdict("json_schema", {"schema": schema}, '{"name": "Ada"}')
    failed = await build("json_schema", {"schema": schema}).check('{"name": 3}', INPUT)
    assert not failed.passed and "name" in failed.reason
    assert not await verdict("json_schema", {"schema": schema}, "not json")


@pytest.mark.parametrize(
    ("kind", "params", "fragment"),
    [
        ("regex_deny", {"pattern": "("}, "not a valid regular expression"),
        ("contains", {"words": []}, "non-empty list"),
        ("length", {"min": 5, "max": 2}, "below"),
        ("json_schema", {"schema": {"type": "nope"}}, "schema is invalid"),
        ("pii", {"entities": ["passport"]}, "unknown PII entities"),
        ("moderation", {"category": "spam"}, "category"),
        ("teleport", {}, "unknown guardrail kind"),
    ],
)
def test_bad_parameters_say_what_is_wrong(kind: str, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(GuardrailConfigError, match=fragment):
        build(kind, params)


async def test_portkey_check_ids_translate_their_parameters() -> None:
    words = build_portkey_check("default.wordCount", {"minWords": 2, "maxWords": 3})
    assert (await words.check("one two", INPUT)).passed and not (await words.check("one", INPUT)).passed
    with pytest.raises(GuardrailConfigError, match="unsupported check"):
        build_portkey_check("acme.magic", {})


async def _chunks(pieces: list[str]) -> Any:
    for piece in pieces:
        yield [ChatChunk({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})]
    yield [ChatChunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})]


async def test_placeholders_split_across_chunks_are_restored_at_every_cut() -> None:
    redactor = Redactor()
    original = "write to jan@example.nl, cc piet@example.com and jan@example.nl; card 4111111111111111."
    redacted = redactor.redact(original)
    assert "@" not in redacted and redacted.count("[EMAIL_1]") == 2
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(redacted)), rng.randint(1, 30)))
        pieces = [redacted[a:b] for a, b in zip([0, *cuts], [*cuts, len(redacted)], strict=True)]
        out = [c.data for batch in [b async for b in restore_stream(_chunks(pieces), redactor)] for c in batch]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
        assert text == original
        assert all("[EMAIL" not in (c["choices"][0]["delta"].get("content") or "") for c in out)


async def test_a_bracket_that_is_no_placeholder_is_passed_through() -> None:
    redactor = Redactor()
    redactor.redact("jan@example.nl")
    pieces = ["see [1", "] and [EMAIL_9] and [EMA", "IL_1]"]
    out = [c.data for batch in [b async for b in restore_stream(_chunks(pieces), redactor)] for c in batch]
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
        == "see [1] and [EMAIL_9] and jan@example.nl"
    )
