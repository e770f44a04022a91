"""`merge_prompt`, the pure function deployments share with the router: what it takes from the prompt and the
request, and that nothing stored is shared with the request it returns."""

from __future__ import annotations

from portico.core.prompts import PromptDraft, StoredPrompt
from portico.core.types import ChatRequest
from portico.pipeline.prompts import merge_prompt

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def stored(**fields: object) -> StoredPrompt:
    content = {
        "messages": ({"role": "system", "content": [{"type": "text", "text": "Hi {{name}}"}]},),
        "model": "openai/gpt-4o",
        "parameters": {"temperature": 0.2, "stop": ["END"]},
        "tools": (TOOL,),
        "variables": {"name": "guest", "tone": "dry"},
        "template_engine": "jinja",
        **fields,
    }
    return StoredPrompt.of("p", 1, PromptDraft(**content), 0.0)  # type: ignore[arg-type]


def test_request_fields_win_and_the_prompt_fills_the_rest() -> None:
    request = ChatRequest(
        "openai/gpt-4o-mini",
        {"messages": [{"role": "user", "content": "q"}], "temperature": 0.9, "top_p": None},
        variables={"name": "Ada"},
        prompt_id="p",
    )
    merged = merge_prompt(stored(), request)
    assert merged.model == "openai/gpt-4o-mini"
    assert merged.body == {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Hi {{name}}"}]},
            {"role": "user", "content": "q"},
        ],
        "temperature": 0.9,
        "stop": ["END"],
        "tools": [TOOL],
    }, "a null request field does not erase the prompt's"
    assert merged.variables == {"name": "Ada", "tone": "dry"} and merged.template_engine == "jinja"
    assert request.body["temperature"] == 0.9 and request.variables == {"name": "Ada"}, "the request is not changed"


def test_the_request_engine_wins_and_an_empty_model_takes_the_prompt_one() -> None:
    merged = merge_prompt(stored(variables={}), ChatRequest("", {"messages": []}, template_engine="text"))
    assert merged.model == "openai/gpt-4o" and merged.template_engine == "text" and merged.variables is None


def test_nothing_stored_is_shared_with_the_merged_request() -> None:
    prompt = stored()
    merged = merge_prompt(prompt, ChatRequest("m", {"messages": []}))
    merged.body["messages"][0]["content"][0]["text"] = "changed"
    merged.body["tools"][0]["function"]["name"] = "changed"
    merged.body["stop"].append("X")
    assert prompt.messages[0]["content"][0]["text"] == "Hi {{name}}"
    assert prompt.tools is not None and prompt.tools[0]["function"]["name"] == "lookup"
    assert prompt.parameters["stop"] == ["END"]
