"""The `jinja` template engine: a Jinja2 sandbox with a work budget, for templates written by clients.

Whatever a template does, it either renders or raises `TemplateFailure` (a 422): no Python object internals, no
other templates, and bounded work (loop iterations, calls, the size of what operators and filters build, time).
One sandbox serves every request and keeps templates compiled; each request's budget rides in `_BUDGET`.
Imported only when a request asks for `template_engine: jinja`.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import Template, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from portico.pipeline.templating import TemplateFailure

MAX_STEPS = 100_000
"""Loop iterations plus calls (macros, methods, functions) in one request's templates, all messages together."""
MAX_SECONDS = 1.0
"""Wall time for one request's templates; checked at every step, so a loop cannot outlive it by much."""
MAX_CHARS = 4_000_000
"""The largest value a template may build, in characters of its text form, and the most it may output in all."""
MAX_CACHED_CHARS = 16_384
"""Templates up to this long are kept compiled (256 of them at most)."""
MAX_POWER_BITS = 4096
"""The largest integer `**` and `*` may produce, in bits (`2 ** 10 ** 9` would compute for minutes)."""

_LOADING = (nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)
_WIDE_PERCENT = re.compile(r"%[-+ #0]*(?:\*|[1-9]\d{6,}|\d*\.(?:\*|0*[1-9]\d{6,}))")
_WIDE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*[1-9]\d{6,}[^{}]*\}")
"""A width or precision of a million or more in a format spec (`'%1000000000d' % 1`) builds it in one C call."""
_NESTED_FORMAT = re.compile(r"\{[^{}]*:[^{}]*\{")


class _Budget:
    """One request's allowance, and the measured size of every container its templates built or were given.

    A container's size is its text form's length, roughly: lists nested by sharing (`[a, a]` ten times over)
    are small in memory and huge once printed or hashed, so sizes add up per reference, memoised by identity
    (each container is measured once; the memo holds it, so its id is not reused)."""

    __slots__ = ("deadline", "output", "sizes", "steps")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.output = MAX_CHARS
        self.deadline = time.monotonic() + MAX_SECONDS
        self.sizes: dict[int, tuple[object, int]] = {}

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise TemplateFailure(f"the template does too much work (more than {MAX_STEPS} loop steps and calls)")
        if time.monotonic() > self.deadline:
            raise TemplateFailure(f"the template took longer than {MAX_SECONDS:g} s to render")

    def checked(self, value: Any) -> Any:
        """`value`, unless it is larger than MAX_CHARS."""
        if self.size(value) > MAX_CHARS:
            raise TemplateFailure(f"the template built a value larger than {MAX_CHARS} characters")
        return value

    def size(self, value: Any) -> int:
        if isinstance(value, str | bytes):
            return len(value)
        if isinstance(value, int):
            return value.bit_length() // 3 + 1
        if not isinstance(value, list | tuple | dict | set | frozenset):
            return 1
        known = self.sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        self.sizes[id(value)] = (value, 2)  # a container inside itself counts once
        total = 2
        for item in value.items() if isinstance(value, dict) else value:
            total += self.size(item) + 2
            if total > MAX_CHARS:
                break  # big enough to refuse: no need to measure the rest
        self.sizes[id(value)] = (value, total)
        return total

    def emit(self, value: Any) -> Any:
        """Jinja's `finalize`: every value a template outputs goes through here before it becomes text."""
        self.output -= self.size(value)
        if self.output < 0:
            raise TemplateFailure(f"the template outputs more than {MAX_CHARS} characters")
        return value


class _Sandbox(ImmutableSandboxedEnvironment):
    """One per process; the budget of the request being rendered is `_BUDGET`'s. Jinja's immutable sandbox
    already refuses `_` attributes, callables marked unsafe and in-place changes to lists and dicts
    (`x.append(x)`), and caps `range()`; this bounds the rest."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(autoescape=False, finalize=_emit)
        self.filters = {name: _sized_filter(f) for name, f in self.filters.items()}
        self.filters[_STEPS] = _steps
        self.filters[_SIZED] = _sized

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Refuse loading other templates; route every loop's iterable through `_steps` (no Jinja hook sees a
        plain `for` iteration otherwise), and every list, tuple and dict built or concatenated through a size
        check (Jinja builds them with no hook either)."""
        tree = super()._parse(source, name, filename)
        for node in tree.find_all(_LOADING):
            raise TemplateFailure(f"line {node.lineno}: templates cannot import, include or extend other templates")
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = _filtered(loop.iter, _STEPS)
        for concat in list(tree.find_all(nodes.Concat)):
            concat.nodes = [_filtered(n, _SIZED) for n in concat.nodes]
        for parent in list(tree.find_all(nodes.Node)):
            for field, child in parent.iter_fields():
                if _builds(child):
                    setattr(parent, field, _filtered(child, _SIZED))
                elif isinstance(child, list):
                    child[:] = [_filtered(c, _SIZED) if _builds(c) else c for c in child]
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        if attribute.startswith("_"):  # refused even when absent: a probe learns nothing from "" against an error
            raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # The default is an Undefined that renders as "" and fails only when used further (`func.__globals__`
        # and the like): refused as clearly as an `_` name.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        budget.spend()
        bound = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps `str.format` in its own checker
        owner = getattr(bound, "__self__", None)
        if isinstance(owner, str) and getattr(bound, "__name__", None) in ("format", "format_map"):
            _check_format(_WIDE_FORMAT, owner)
            if _NESTED_FORMAT.search(owner):  # `'{:{w}}'.format(1, w=...)`: some numbers are widths
                _check_counts(args, kwargs)
        else:
            _check_counts(args, kwargs)
        return budget.checked(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        budget = _BUDGET.get()
        budget.spend()
        if operator_ == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(left.bit_length(), 1) * right > MAX_POWER_BITS:
                raise TemplateFailure(f"`**` would build a number larger than {MAX_POWER_BITS} bits")
        elif operator_ == "*":
            _check_product(budget, left, right)
        elif operator_ == "%" and isinstance(left, str):
            _check_format(_WIDE_PERCENT, left)
        return budget.checked(self.binop_table[operator_](left, right))


_BUDGET: ContextVar[_Budget] = ContextVar("portico_template_budget")
"""The budget of the request whose templates are rendering (rendering never awaits, so it cannot leak)."""


def _steps(iterable: Any) -> Any:
    spend = _BUDGET.get().spend
    for item in iterable:
        spend()
        yield item


def _sized(value: Any) -> Any:
    return _BUDGET.get().checked(value)


def _emit(value: Any) -> Any:
    return _BUDGET.get().emit(value)


def _sized_filter(filter_: Callable[..., Any]) -> Callable[..., Any]:
    """Counts are checked in a filter's arguments, not in the value it filters (`{{ price | round }}`)."""
    value_at = 1 if getattr(filter_, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(filter_)  # copies `jinja_pass_arg` too, so context-taking filters still get it
    def sized(*args: Any, **kwargs: Any) -> Any:
        if filter_.__name__ == "do_format" and isinstance(args[value_at], str):
            _check_format(_WIDE_PERCENT, args[value_at])  # its arguments are values, not sizes
        else:
            _check_counts(args[value_at + 1 :], kwargs)
        return _BUDGET.get().checked(filter_(*args, **kwargs))

    return sized


_STEPS = "portico_steps"
_SIZED = "portico_sized"


def _builds(node: object) -> bool:
    """A list, dict or tuple the template builds (a tuple that is not an assignment's target)."""
    return isinstance(node, nodes.List | nodes.Dict) or (isinstance(node, nodes.Tuple) and node.ctx == "load")


def _filtered(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _check_product(budget: _Budget, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_POWER_BITS:
            raise TemplateFailure(f"`*` would build a number larger than {MAX_POWER_BITS} bits")
        return
    for seq, count in ((left, right), (right, left)):
        if (
            isinstance(count, int)
            and isinstance(seq, str | bytes | list | tuple)
            and budget.size(seq) * count > MAX_CHARS
        ):
            raise TemplateFailure(f"`*` would build a value larger than {MAX_CHARS} characters")


def _check_format(wide: re.Pattern[str], template: str) -> None:
    if wide.search(template):
        raise TemplateFailure("a format width or precision of a million or more is larger than templates allow")


def _check_counts(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """A count or width beyond MAX_CHARS (`'x'.ljust(10**9)`, `|center(10**9)`) would build it in one C call."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_CHARS:
            raise TemplateFailure(f"a count of {value} is larger than templates allow ({MAX_CHARS})")


@functools.cache
def _sandbox() -> _Sandbox:
    return _Sandbox()


def syntax_error(text: str) -> str | None:
    """Why the serving sandbox would refuse to compile `text` (None: it compiles). Admin writes check stored
    templates with this, so nothing is accepted at write time that every request would then refuse."""
    try:
        _sandbox().parse(text)
    except TemplateSyntaxError as exc:
        return f"Jinja: {exc.message}"
    except TemplateFailure as exc:
        return f"Jinja: {exc}"
    return None


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> Template:
    """Compiling is most of a render's cost (2-4 ms against tens of µs) and a client sends the same templates
    again and again. Failures are not cached (they raise)."""
    return _sandbox().from_string(text)


def jinja_renderer(variables: Mapping[str, Any]) -> Callable[[str], str]:
    """A render function for one request's texts; they share one budget."""
    budget = _Budget()

    def render(text: str) -> str:
        token = _BUDGET.set(budget)
        try:
            template = _compiled(text) if len(text) <= MAX_CACHED_CHARS else _sandbox().from_string(text)
            out = template.render(**variables)
        except TemplateFailure:
            raise
        except SecurityError as exc:
            raise TemplateFailure(f"refused by the template sandbox: {exc}") from None
        except RecursionError:
            raise TemplateFailure("the template recurses too deeply") from None
        except Exception as exc:  # the template is the client's: whatever it raises is a client error
            raise TemplateFailure(f"template error: {type(exc).__name__}: {exc}") from None
        finally:
            _BUDGET.reset(token)
        return out

    return render
