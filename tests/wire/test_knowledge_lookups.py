"""`knowledge_bases` entries → the retrieval stage's lookups: what the request said is kept, what it did not say stays
None so the base decides (AMB-43), and each entry knows its path for errors (top level or `orq`)."""

from __future__ import annotations

from typing import Any

from portico.core.knowledge import RerankSettings
from portico.wire.convert import build_request, validate_body


def _request(extra: dict[str, Any]) -> Any:
    raw = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "q"}], **extra}
    return build_request(raw, validate_body(raw), dialect="orq", client_key=None)


def test_unset_fields_stay_none_and_set_ones_are_kept() -> None:
    entries = [
        {"knowledge_id": "plain"},
        {
            "knowledge_id": "full",
            "query": "refunds",
            "top_k": 3,
            "threshold": 0.4,
            "search_type": "keyword_search",
            "filter_by": {"year": {"gte": 2020}},
            "search_options": {"include_metadata": False, "include_vectors": True},
            "rerank_config": {"model": "cohere/rerank-v3.5", "top_k": 2},
            "agentic_rag_config": {"model": "openai/gpt-4o-mini"},
        },
    ]
    plain, full = _request({"knowledge_bases": entries}).knowledge
    assert plain.knowledge_id == "plain" and plain.at == ("body", "knowledge_bases", 0)
    search = plain.search
    assert (search.text, search.top_k, search.threshold, search.search_type, search.filter) == (
        "",
        None,
        None,
        None,
        None,
    )
    assert (search.include_metadata, search.include_scores, search.include_vectors) == (True, True, False)
    assert search.rerank is None and search.agentic_model is None
    assert full.at == ("body", "knowledge_bases", 1)
    search = full.search
    assert (search.text, search.top_k, search.threshold, search.search_type) == ("refunds", 3, 0.4, "keyword_search")
    assert search.filter == {"year": {"gte": 2020}}
    assert (search.include_metadata, search.include_scores, search.include_vectors) == (False, True, True)
    assert search.rerank == RerankSettings("cohere/rerank-v3.5", None, 2), "no threshold given: the base's"
    assert search.agentic_model == "openai/gpt-4o-mini"


def test_the_orq_container_names_its_own_path_and_the_top_level_wins() -> None:
    (lookup,) = _request({"orq": {"knowledge_bases": [{"knowledge_id": "old"}]}}).knowledge
    assert lookup.at == ("body", "orq", "knowledge_bases", 0)
    both = {"knowledge_bases": [{"knowledge_id": "new"}], "orq": {"knowledge_bases": [{"knowledge_id": "old"}]}}
    assert [k.knowledge_id for k in _request(both).knowledge] == ["new"]
    assert _request({}).knowledge == ()
