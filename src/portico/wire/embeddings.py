"""`POST /v1/embeddings` on the wire: OpenAI's request and answer, plus orq's routing fields; wire ⇄ core here.

The answer is OpenAI's exactly (`object: list`, `data[].embedding`, `usage`); `encoding_format: base64` is the
vector as little-endian float32 bytes, base64-encoded, which is what the OpenAI SDK decodes (its default). Token
arrays as `input` are refused with a 422 naming them: turning tokens back into text needs each model's tokenizer.
"""

from __future__ import annotations

import base64
import struct
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import Meta, Struct

from portico.core.embeddings import EmbeddingJob, EmbeddingRequest, EmbeddingResult, InputType
from portico.core.errors import FieldError, ValidationFailed
from portico.core.types import CacheOptions, RetryPolicy, RoutingPlan, Target
from portico.wire.convert import field_error
from portico.wire.openai_chat import CacheSpec, Fallback, Retry, Timeout

MAX_DIMENSIONS = 16384


class EmbeddingCreate(Struct):
    """The request body. `input_type` is a retrieval hint for the providers that take one (Cohere's names)."""

    model: Annotated[str, Meta(min_length=1)]
    input: str | list[Any]
    """A string or a non-empty list of non-empty strings."""
    dimensions: Annotated[int, Meta(ge=1, le=MAX_DIMENSIONS)] | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    input_type: InputType | None = None
    fallbacks: list[Fallback] | None = None
    retry: Retry | None = None
    timeout: Timeout | None = None
    cache: CacheSpec | None = None


def validate_embeddings(raw: Any) -> EmbeddingCreate:
    if not isinstance(raw, dict):
        raise ValidationFailed([FieldError(("body",), "The request body must be a JSON object.", "type_error")])
    try:
        wire = msgspec.convert(raw, EmbeddingCreate)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([field_error(exc)]) from None
    _check_input(wire.input)
    return wire


def _check_input(value: str | list[Any]) -> None:
    if isinstance(value, str):
        if not value:
            raise _invalid(("body", "input"), "input must not be an empty string")
        return
    if not value:
        raise _invalid(("body", "input"), "input must not be an empty list")
    for index, item in enumerate(value):
        if isinstance(item, int | list) and not isinstance(item, bool):
            raise _invalid(
                ("body", "input", index),
                "token arrays are not supported: send the text (each model has its own tokenizer)",
            )
        if not isinstance(item, str):
            raise _invalid(("body", "input", index), f"Expected `str`, got `{type(item).__name__}`", "type_error")
        if not item:
            raise _invalid(("body", "input", index), "input items must not be empty strings")


def _invalid(loc: tuple[str | int, ...], message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed([FieldError(loc, message, kind)])


def embedding_job(wire: EmbeddingCreate, client_key: str | None = None) -> EmbeddingJob:
    texts = (wire.input,) if isinstance(wire.input, str) else tuple(wire.input)
    request = EmbeddingRequest(texts, wire.dimensions, wire.input_type, wire.user)
    cache = CacheOptions(int(wire.cache.ttl)) if wire.cache is not None else None
    return EmbeddingJob(wire.model, request, _routing(wire), cache, client_key)


def _routing(wire: EmbeddingCreate) -> RoutingPlan | None:
    """orq's semantics, as for chat: `model` first, then each of `fallbacks` in order; `retry` per target."""
    if wire.retry is None and not wire.fallbacks and wire.timeout is None:
        return None
    retry = None
    if wire.retry is not None:
        retry = RetryPolicy(count=int(wire.retry.count), on_codes=frozenset(int(c) for c in wire.retry.on_codes))
    targets = (Target(model=wire.model), *(Target(model=f.model) for f in wire.fallbacks or ()))
    return RoutingPlan(
        mode="fallback" if len(targets) > 1 else "single",
        targets=targets,
        retry=retry,
        timeout_ms=wire.timeout.call_timeout if wire.timeout is not None else None,
    )


def embeddings_body(result: EmbeddingResult, encoding_format: str, model: str) -> bytes:
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding_format)}
        for index, vector in enumerate(result.vectors)
    ]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector
