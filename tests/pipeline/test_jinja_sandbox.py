"""The Jinja sandbox's limits that an HTTP test cannot reach deterministically (the wall-clock deadline)."""

from __future__ import annotations

import pytest

from portico.pipeline import jinja_sandbox
from portico.pipeline.templating import TemplateFailure


def test_the_deadline_stops_a_template_that_spends_no_step_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jinja_sandbox, "MAX_SECONDS", -1.0)  # already past: the first step must stop it
    render = jinja_sandbox.jinja_renderer({})
    assert render("no loops, no calls") == "no loops, no calls"
    with pytest.raises(TemplateFailure, match="took longer than -1 s"):
        render("{% for i in range(3) %}{{ i }}{% endfor %}")


def test_sizes_count_shared_references_each_time_and_cycles_once() -> None:
    budget = jinja_sandbox._Budget()
    leaf = ["abcd"]  # 2 + (4 + 2)
    assert budget.size(leaf) == 8
    assert budget.size([leaf, leaf]) == 2 + 2 * (8 + 2)
    loop: list[object] = []
    loop.append(loop)
    assert budget.size(loop) == 2 + 2 + 2


def test_a_cached_template_spends_the_budget_of_the_request_rendering_it() -> None:
    loop = "{% for i in range(60000) %}{% endfor %}done"
    first, second = jinja_sandbox.jinja_renderer({}), jinja_sandbox.jinja_renderer({})
    assert first(loop) == "done"
    assert second(loop) == "done"  # compiled once, but a fresh budget
    with pytest.raises(TemplateFailure, match="too much work"):
        second(loop)  # the same request's second message: 120000 steps in all
    assert jinja_sandbox._compiled.cache_info().hits >= 2
