"""Templating over HTTP (`/v2/router/chat/completions` with `variables`): the text engine and sandboxed Jinja.

A client's template either renders into what the upstream receives, or is refused with a 422 that says why:
never a 500, never a hang, and never an upstream call.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Response, Stack

ROUTER = "/v2/router/chat/completions"
WORK = "too much work"


def ask(stack: Stack, content: Any, variables: dict[str, Any] | None = None, engine: str | None = "jinja") -> Response:
    body: dict[str, Any] = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}],
        "variables": {"name": "Ada", "items": ["tea", "cake"]} if variables is None else variables,
    }
    if engine is not None:
        body["template_engine"] = engine
    return stack.post(ROUTER, body)


def sent_content(stack: Stack) -> Any:
    assert len(stack.upstream.requests) == 1
    return stack.upstream.requests[0]["body"]["messages"][1]["content"]


def refused(stack: Stack, answer: Response) -> str:
    """The 422 a bad template gets: orq's shape, located at the message, and no upstream call."""
    assert answer.status == 422, answer.body
    body = answer.json()
    assert body["error"]["param"] == "messages.1.content"
    assert body["detail"][0]["loc"] == ["body", "messages", 1, "content"]
    assert body["detail"][0]["type"] == "template_error"
    assert stack.upstream.requests == []
    message: str = body["detail"][0]["msg"]
    return message


def test_jinja_renders_variables_loops_and_filters(stack: Stack) -> None:
    template = "Hi {{ name | upper }}: {% for i in items %}{{ loop.index }}.{{ i }} {% endfor %}{{ items | length }}"
    assert ask(stack, template).status == 200
    assert sent_content(stack) == "Hi ADA: 1.tea 2.cake 2"


def test_jinja_renders_text_parts_and_leaves_other_parts_alone(stack: Stack) -> None:
    parts = [
        {"type": "text", "text": "{{ name }}!"},
        {"type": "image_url", "image_url": {"url": "https://example.com/{{ name }}.png"}},
    ]
    assert ask(stack, parts).status == 200
    assert sent_content(stack) == [parts[0] | {"text": "Ada!"}, parts[1]]


def test_unknown_variables_jinja_empty_text_engine_verbatim(stack: Stack) -> None:
    assert ask(stack, "[{{ nobody }}] {{ name }}").status == 200
    assert sent_content(stack) == "[] Ada"
    stack.upstream.requests.clear()
    assert ask(stack, "[{{ nobody }}] {{ name }}", engine=None).status == 200
    assert sent_content(stack) == "[{{ nobody }}] Ada"


def test_jinja_syntax_and_runtime_errors_are_422(stack: Stack) -> None:
    assert "unexpected end of template" in refused(stack, ask(stack, "{{ name"))
    assert "ZeroDivisionError" in refused(stack, ask(stack, "{{ 1 / 0 }}"))
    assert "is undefined" in refused(stack, ask(stack, "{{ nobody.attr }}"))


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
        ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__'"),
        ("{{ name._private }}", "access to attribute '_private' of 'str' object is unsafe"),
        ("{{ name['__class__'] }}", "access to attribute '__class__' of 'str' object is unsafe"),
        ("{% set d = dict(a=1) %}{{ d.update(b=2) }}", "access to attribute 'update' of 'dict' object is unsafe"),
        ("{{ name | attr('__class__') }}", "access to attribute '__class__'"),
        ("{{ self.__init__ }}", "access to attribute '__init__'"),
        ("{% import 'os' as os %}{{ os.system('id') }}", "cannot import, include or extend"),
        ("{% from 'os' import system %}", "cannot import, include or extend"),
        ("{% include '/etc/passwd' %}", "cannot import, include or extend"),
        ("{% extends 'base.html' %}", "cannot import, include or extend"),
    ],
)
def test_sandbox_escapes_are_refused(stack: Stack, template: str, says: str) -> None:
    assert says in refused(stack, ask(stack, template))


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{{ range(10 ** 9) | list }}", "larger than templates allow"),
        ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", WORK),
        ("{% for a in items * 1000 %}{% for b in items * 1000 %}{% endfor %}{% endfor %}", WORK),
        ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}", WORK),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recurses too deeply"),
        ("{{ 'x' * 10 ** 10 }}", "larger than 4000000 characters"),
        ("{{ 2 ** 1000000 }}", "larger than 4096 bits"),
        ("{{ 'x' | center(10 ** 9) }}", "larger than templates allow"),
        ("{{ name.ljust(10 ** 9) }}", "larger than templates allow"),
        ("{{ lipsum(10 ** 9) }}", "larger than templates allow"),
        ("{{ '%1000000000d' % 1 }}", "format width"),
        ("{{ '{:1000000000}'.format(1) }}", "format width"),
        ("{{ '%*d' % (10 ** 9, 1) }}", "format width"),
        ("{{ '{:{w}}'.format(1, w=10 ** 9) }}", "larger than templates allow"),
        (
            "{% set ns = namespace(s=name) %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "larger than 4000000 characters",
        ),
        (
            "{% set ns = namespace(x=[name]) %}{% for i in range(64) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}",
            "larger than 4000000 characters",
        ),
        (
            "{% set ns = namespace(x=(name,)) %}{% for i in range(64) %}{% set ns.x = (ns.x, ns.x) %}{% endfor %}",
            "larger than 4000000 characters",
        ),
        ("{% set x = [name] %}{% for i in range(64) %}{{ x.append(x) }}{% endfor %}", "unsafe"),
        ("{% for i in range(90000) %}{{ '%0999999d' % i }}{% endfor %}", "outputs more than 4000000 characters"),
    ],
)
def test_runaway_templates_are_bounded(stack: Stack, template: str, says: str) -> None:
    started = time.monotonic()
    message = refused(stack, ask(stack, template))
    assert says in message or (says == WORK and "took longer than 1 s" in message)  # a loaded machine: time first
    assert time.monotonic() - started < 10  # loose: the budget stops each within about a second


def test_numbers_in_values_and_format_arguments_are_not_sizes(stack: Stack) -> None:
    template = "{{ total | round | int }} {{ '{:,}'.format(total) }} {{ '%.2f' | format(total) }}"
    assert ask(stack, template, {"total": 12345678.5}).status == 200
    assert sent_content(stack) == "12345678 12,345,678.5 12345678.50"


def test_one_budget_covers_every_message_of_a_request(stack: Stack) -> None:
    """Each message alone stays under the step budget; together they do not."""
    loop = "{% for i in range(60000) %}{% endfor %}"
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": loop}, {"role": "user", "content": loop}],
        "variables": {"x": 1},
        "template_engine": "jinja",
    }
    assert ask(stack, loop).status == 200
    stack.upstream.requests.clear()
    answer = stack.post(ROUTER, body)
    assert answer.status == 422 and "too much work" in answer.json()["detail"][0]["msg"]
    assert answer.json()["detail"][0]["loc"] == ["body", "messages", 1, "content"]
