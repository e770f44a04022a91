"""The chat request schema every endpoint accepts: OpenAI's fields, orq's routing extensions and vLLM's extras.

One superset schema (CHECKLIST AMB-03) validated with msgspec, which is ~5x cheaper than pydantic on the hot path.
Unknown keys are allowed everywhere (they are forwarded, not modelled here). Constraints are the router
document's schema keywords; endpoint-specific rules live in `wire.rules`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

NonEmpty = Meta(min_length=1)


class CacheControl(Struct, omit_defaults=True):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextPart(Struct, tag="text", tag_field="type"):
    text: str
    cache_control: CacheControl | None = None


class ImageURL(Struct):
    url: str
    detail: Literal["low", "high", "auto"] | None = None


class ImagePart(Struct, tag="image_url", tag_field="type"):
    image_url: ImageURL
    cache_control: CacheControl | None = None


class InputAudio(Struct):
    data: str
    format: Literal["mp3", "wav"]


class AudioPart(Struct, tag="input_audio", tag_field="type"):
    input_audio: InputAudio


class FileSpec(Struct):
    file_data: str | None = None
    uri: str | None = None
    file_id: str | None = None
    filename: str | None = None
    mimeType: str | None = None
    mime_type: str | None = None


class FilePart(Struct, tag="file", tag_field="type"):
    file: FileSpec
    cache_control: CacheControl | None = None


class RefusalPart(Struct, tag="refusal", tag_field="type"):
    refusal: str | None = None


class ReasoningPart(Struct, tag="reasoning", tag_field="type"):
    reasoning: str
    signature: str | None = None


class RedactedReasoningPart(Struct, tag="redacted_reasoning", tag_field="type"):
    data: str


class ThinkingPart(Struct, tag="thinking", tag_field="type"):
    thinking: str
    closed: bool | None = None


class MediaURLPart(Struct, tag="audio_url", tag_field="type"):
    audio_url: dict[str, Any]


class VideoURLPart(Struct, tag="video_url", tag_field="type"):
    video_url: dict[str, Any]


UserPart = TextPart | ImagePart | AudioPart | FilePart | MediaURLPart | VideoURLPart
AssistantPart = TextPart | RefusalPart | ReasoningPart | RedactedReasoningPart | ThinkingPart


class FunctionCall(Struct):
    name: str
    arguments: str


class ToolCall(Struct):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"
    thought_signature: str | None = None


class AudioRef(Struct):
    id: str


class SystemMessage(Struct, tag="system", tag_field="role"):
    content: str | Annotated[list[TextPart], NonEmpty]
    name: str | None = None


class DeveloperMessage(Struct, tag="developer", tag_field="role"):
    content: str | Annotated[list[TextPart], NonEmpty]
    name: str | None = None


class UserMessage(Struct, tag="user", tag_field="role"):
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(Struct, tag="assistant", tag_field="role"):
    content: str | list[AssistantPart] | None = None
    refusal: str | None = None
    name: str | None = None
    audio: AudioRef | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    redacted_reasoning: str | None = None


class ToolMessage(Struct, tag="tool", tag_field="role"):
    content: str | list[TextPart]
    tool_call_id: str | None
    cache_control: CacheControl | None = None


class FunctionMessage(Struct, tag="function", tag_field="role"):
    content: str | None
    name: str


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage


class FunctionDef(Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Struct):
    function: FunctionDef
    type: Literal["function"] = "function"


class ToolName(Struct):
    name: str


class NamedToolChoice(Struct):
    function: ToolName
    type: Literal["function"] = "function"


class JSONSchemaSpec(Struct):
    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    schema: Any = None
    strict: bool | None = None


class TextFormat(Struct, tag="text", tag_field="type"):
    pass


class JSONObjectFormat(Struct, tag="json_object", tag_field="type"):
    pass


class JSONSchemaFormat(Struct, tag="json_schema", tag_field="type"):
    json_schema: JSONSchemaSpec


class StructuralTagFormat(Struct, tag="structural_tag", tag_field="type"):
    format: Any = None
    structures: list[Any] | None = None
    triggers: list[str] | None = None


ResponseFormat = TextFormat | JSONObjectFormat | JSONSchemaFormat | StructuralTagFormat


class ThinkingEnabled(Struct, tag="enabled", tag_field="type"):
    budget_tokens: float | None = None
    thinking_level: Literal["low", "medium", "high"] | None = None


class ThinkingDisabled(Struct, tag="disabled", tag_field="type"):
    pass


class ThinkingAdaptive(Struct, tag="adaptive", tag_field="type"):
    pass


class AudioOutput(Struct):
    voice: Literal["alloy", "echo", "fable", "onyx", "nova", "shimmer"]
    format: Literal["wav", "mp3", "flac", "opus", "pcm16"]


class StreamOptions(Struct):
    include_usage: bool | None = None
    continuous_usage_stats: bool | None = None


class Retry(Struct):
    count: Annotated[float, Meta(ge=1, le=5)] = 3
    on_codes: Annotated[list[Annotated[float, Meta(ge=100, le=599)]], NonEmpty] = field(default_factory=lambda: [429])


class Fallback(Struct):
    model: str


class CacheSpec(Struct):
    type: Literal["exact_match"]
    ttl: Annotated[float, Meta(ge=1, le=259200)] = 1800


class WeightedModel(Struct):
    model: str
    weight: Annotated[float, Meta(ge=0.001, le=1)] = 0.5


class LoadBalancer(Struct):
    type: Literal["weight_based"]
    models: Annotated[list[WeightedModel], NonEmpty]


class Timeout(Struct):
    call_timeout: Annotated[float, Meta(ge=1)]


class Guardrail(Struct):
    id: str
    execute_on: Literal["input", "output"]


class PromptRef(Struct):
    id: Annotated[str, Meta(min_length=1)]
    version: Literal["latest"] | Annotated[int, Meta(ge=1)]
    """The spec allows only "latest"; a version number pins one (an extension)."""


class Identity(Struct, omit_defaults=True):
    id: str
    display_name: str | None = None
    email: str | None = None
    metadata: dict[str, Any] | list[dict[str, Any]] | None = None
    logo_url: str | None = None
    tags: list[str] | None = None


class Thread(Struct, omit_defaults=True):
    id: str
    tags: list[str] | None = None


class InputItem(Struct):
    key: str
    value: Any = None
    is_pii: bool | None = None


class RerankConfig(Struct):
    model: str
    threshold: Annotated[float, Meta(ge=0, le=1)] | None = None
    """None: the base's rerank threshold, else 0 (AMB-43: the request, then the base, then the schema default)."""
    top_k: Annotated[int, Meta(ge=1, le=100)] | None = None


class AgenticRAGConfig(Struct):
    model: str


class SearchOptions(Struct):
    include_vectors: bool | None = None
    include_metadata: bool | None = None
    include_scores: bool | None = None


class KnowledgeQuery(Struct):
    knowledge_id: str
    top_k: Annotated[int, Meta(ge=1, le=100)] | None = None
    threshold: Annotated[float, Meta(ge=0, le=1)] | None = None
    search_type: Literal["vector_search", "keyword_search", "hybrid_search"] | None = None
    filter_by: dict[str, Any] | None = None
    search_options: SearchOptions | None = None
    rerank_config: RerankConfig | None = None
    agentic_rag_config: AgenticRAGConfig | None = None
    query: str | None = None


class Orq(Struct):
    """The deprecated `orq` container; every child also has (or gets) a top-level spelling that wins."""

    name: str | None = None
    retry: Retry | None = None
    fallbacks: list[Fallback] | None = None
    prompt: PromptRef | None = None
    identity: Identity | None = None
    contact: Identity | None = None
    thread: Thread | None = None
    inputs: dict[str, Any] | list[InputItem] | None = None
    cache: CacheSpec | None = None
    knowledge_bases: list[KnowledgeQuery] | None = None
    load_balancer: LoadBalancer | list[WeightedModel] | None = None
    timeout: Timeout | None = None


Score = Annotated[float, Meta(ge=-2, le=2)]


class ChatCompletionRequest(Struct):
    messages: list[Message]
    model: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    audio: AudioOutput | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: Annotated[int, Meta(gt=0)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    logit_bias: dict[str, float] | None = None
    n: Annotated[int, Meta(ge=1)] | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    verbosity: str | None = None
    seed: int | float | None = None
    stop: str | list[str] | None = None
    thinking: ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: int | float | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    user: str | None = None
    functions: list[FunctionDef] | None = None
    function_call: Literal["none", "auto"] | ToolName | None = None
    guardrails: list[Guardrail] | None = None
    fallbacks: list[Fallback] | None = None
    fallback_on_codes: list[Annotated[float, Meta(ge=100, le=599)]] | None = None
    retry: Retry | None = None
    cache: CacheSpec | None = None
    load_balancer: LoadBalancer | list[WeightedModel] | None = None
    timeout: Timeout | None = None
    variables: dict[str, Any] | None = None
    template_engine: Literal["text", "default", "f-string", "jinja", "mustache"] | None = None
    orq: Orq | None = None
    prompt: PromptRef | None = None
    identity: Identity | None = None
    contact: Identity | None = None
    thread: Thread | None = None
    knowledge_bases: list[KnowledgeQuery] | None = None
    add_generation_prompt: bool | None = None
    continue_final_message: bool | None = None


GATEWAY_FIELDS = frozenset(
    {
        "model", "stream", "metadata", "name", "guardrails", "fallbacks", "fallback_on_codes", "retry", "cache",
        "load_balancer", "timeout", "variables", "template_engine", "orq", "prompt", "identity", "contact", "thread",
        "knowledge_bases",
    }
)  # fmt: skip
"""Top-level keys the gateway consumes; everything else in the body is for the model."""
