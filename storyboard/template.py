"""Prompt templates rendered as data: jinja2's immutable sandbox, [vars] only, a few filters, bounded.

A storyboard is untrusted input, so a prompt template must not run code, read the environment,
or loop or grow without end. The sandbox gives the first two once the globals are only `[vars]`
and calls are refused; the bounds below give the rest:

    source   at most MAX_SOURCE characters and MAX_NODES nodes, blocks nested MAX_BLOCK_DEPTH deep
             (compiling is the slow part: a few hundred microseconds a node)
    nodes    an allowlist (no calls, macros, includes, blocks, imports)
    filters  an allowlist (FILTERS), each checked so its result stays under the limit
    values   `+ * **` are sized before they are computed (no "x" * 10**12), `%` on text is refused;
             `~` and filter results are checked after (their inputs are already bounded)
    loops    MAX_STEPS iterations in all, and a deadline checked at every step and output chunk
    output   streamed and counted: rendering stops as soon as it passes the caller's limit
    in all   TOTAL_BUDGET seconds for every template of a board, each compiled once
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from storyboard.errors import TemplateError, did_you_mean

MAX_SOURCE = 8_000
MAX_NODES = 1_000
MAX_BLOCK_DEPTH = 8
MAX_STEPS = 100_000
MAX_INT_BITS = 4096
DEADLINE = 1.0
TOTAL_BUDGET = 10.0
FILTERS = ("abs", "capitalize", "default", "first", "float", "indent", "int", "items", "join", "last",
           "length", "lower", "replace", "round", "string", "title", "trim", "truncate", "upper", "wordcount")
RULE = f"templates may only use [vars] and these filters: {', '.join(FILTERS)}"

_PLAIN = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_ALLOWED_NODES = frozenset({
    "Template", "Output", "TemplateData", "Const", "Name", "Getattr", "Getitem", "Slice", "Filter", "Test",
    "If", "For", "CondExpr", "And", "Or", "Not", "Neg", "Pos", "Compare", "Operand", "Concat", "Add", "Sub",
    "Mul", "Div", "FloorDiv", "Mod", "Pow", "List", "Tuple", "Dict", "Pair", "Keyword", "Assign",
    "AssignBlock", "With", "FilterBlock",
})
_WHY_NOT = {
    "Call": "calling a function or method is not allowed (use a filter: {{ name|upper }})",
    "Macro": "macros are not allowed", "CallBlock": "call blocks are not allowed",
    "Include": "including other files is not allowed", "Extends": "extending other templates is not allowed",
    "Import": "importing is not allowed", "FromImport": "importing is not allowed",
    "Block": "blocks are not allowed",
}


class PromptRenderer:
    """Renders prompt templates with the `[vars]` table; jinja2 is imported only when a prompt needs it."""

    def __init__(self, variables: Mapping[str, Any], *, deadline: float = DEADLINE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.variables = dict(variables)
        self.deadline = deadline
        self.clock = clock
        self.spent = 0.0
        self._env: Any = None
        self._compiled: dict[str, Any] = {}

    def render(self, text: str, limit: int, limit_note: str = "") -> str:
        """The rendered text, at most `limit` characters.

        Raises:
            TemplateError: an unknown variable, a syntax error, something the sandbox refuses, or
                output longer than `limit` (`limit_note` says whose limit it is).
        """
        if "{" not in text:
            return text
        too_long = f"the rendered text is longer than {limit} characters" + (f" ({limit_note})" if limit_note else "")
        rest = _PLAIN.sub("", text)
        if not any(mark in rest for mark in ("{{", "{%", "{#")):
            return self._substitute(text, limit, too_long)
        if len(text) > MAX_SOURCE:
            raise TemplateError(f"the template is {len(text)} characters; templates are limited to {MAX_SOURCE}")
        if self.spent > TOTAL_BUDGET:
            raise TemplateError(f"the board's templates take more than {TOTAL_BUDGET:g} s in all to render; "
                                "simplify them")
        start = self.clock()
        try:
            return self._render_sandboxed(text, limit, too_long)
        finally:
            self.spent += self.clock() - start

    def _substitute(self, text: str, limit: int, too_long: str) -> str:
        """Only `{{ name }}` substitutions: jinja2's result without compiling a template."""
        parts: list[str] = []
        size = 0
        start = 0
        for match in _PLAIN.finditer(text):
            value = self._lookup(match.group(1))
            parts += [text[start:match.start()], value]
            size += match.start() - start + len(value)
            if size > limit + 1:  # + 1: jinja2 drops one trailing newline
                raise TemplateError(too_long)
            start = match.end()
        parts.append(text[start:])
        rendered = "".join(parts)
        rendered = rendered[:-1] if rendered.endswith("\n") else rendered
        if len(rendered) > limit:
            raise TemplateError(too_long)
        return rendered

    def _lookup(self, name: str) -> str:
        if name not in self.variables:
            raise TemplateError(f"unknown variable '{name}'{did_you_mean(name, self.variables)}; define it in [vars]")
        return str(self.variables[name])

    def _render_sandboxed(self, text: str, limit: int, too_long: str) -> str:
        import jinja2
        from jinja2.sandbox import SecurityError

        env = self._environment()
        env.bounds = _Bounds(limit, too_long, self.clock() + self.deadline, self.clock)
        try:
            template = self._compiled.get(text)
            if template is None:
                tree = env.parse(text)
                _check_nodes(tree)
                _bound_loops_and_joins(tree)
                template = env.template_class.from_code(env, env.compile(tree), dict(self.variables), None)
                self._compiled[text] = template
            chunks: list[str] = []
            size = 0
            stream = template.generate()
            try:
                for chunk in stream:
                    size += len(chunk)
                    if size > limit + 1:
                        raise TemplateError(too_long)
                    env.bounds.tick()
                    chunks.append(chunk)
            finally:
                stream.close()
        except TemplateError:
            raise
        except jinja2.UndefinedError as exc:
            found = re.search(r"'([^']+)' is undefined", str(exc))
            if found is None:
                raise TemplateError(f"{exc}; {RULE}") from None
            name = found.group(1)
            raise TemplateError(f"unknown variable '{name}'{did_you_mean(name, self.variables)}; "
                                "define it in [vars]") from None
        except SecurityError as exc:
            raise TemplateError(f"{RULE} ({exc})") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template error on line {exc.lineno} of the prompt: {exc.message}") from None
        except RecursionError:
            raise TemplateError("the template nests too deeply") from None
        except MemoryError:
            raise TemplateError("the template needs too much memory") from None
        except Exception as exc:  # noqa: BLE001 - untrusted input: any failure is the template's, never a traceback
            raise TemplateError(f"the template failed: {type(exc).__name__}: {exc}") from None
        rendered = "".join(chunks)
        rendered = rendered[:-1] if rendered.endswith("\n") else rendered
        if len(rendered) > limit:
            raise TemplateError(too_long)
        return rendered

    def _environment(self) -> Any:
        if self._env is None:
            self._env = _sandbox()
        return self._env


class _Bounds:
    """The limits of one render: characters, loop steps and a deadline."""

    def __init__(self, limit: int, too_long: str, deadline: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.too_long = too_long
        self.deadline = deadline
        self.clock = clock
        self.steps = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateError(f"the template's loops run more than {MAX_STEPS} times in all")
        if self.clock() > self.deadline:
            raise TemplateError("the template takes too long to render (over a second)")

    def check(self, value: Any) -> Any:
        if isinstance(value, str | list | tuple) and len(value) > self.limit:
            raise TemplateError(self.too_long)
        return value

    def check_size(self, size: int) -> None:
        if size > self.limit:
            raise TemplateError(self.too_long)


def _sandbox() -> Any:
    """An immutable sandbox with no globals, the allowlisted filters, and checked arithmetic."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
        bounds: _Bounds

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            # a bound method is only useful to call, and calls are refused; printed, it shows an address
            return super().is_safe_attribute(obj, attr, value) and not callable(value)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(self.bounds, operator, left, right)
            return super().call_binop(context, operator, left, right)

    env = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals.clear()
    builtin = dict(env.filters)
    env.filters.clear()
    for name in FILTERS:
        env.filters[name] = _bounded_filter(env, name, builtin[name])
    env.filters["_steps"] = lambda value: _steps(env.bounds, value)
    env.filters["_checked"] = lambda value: env.bounds.check(value)
    return env


def _bounded_filter(env: Any, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func`, refusing arguments that would make a result past the limit before making it."""

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value_at = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        value, params = args[value_at], list(args[value_at + 1:])
        if name == "replace" and len(params) >= 2 and isinstance(value, str):
            old, new = str(params[0]), str(params[1])
            hits = value.count(old) if old else len(value) + 1
            env.bounds.check_size(len(value) + hits * max(0, len(new) - len(old)))
        elif name == "indent" and isinstance(value, str):
            width = params[0] if params else kwargs.get("width", 4)
            pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
            env.bounds.check_size(len(value) + pad * (value.count("\n") + 1))
        elif name == "join" and not isinstance(value, str):
            items = list(value) if isinstance(value, Iterable) else []
            sep = params[0] if params else kwargs.get("d", "")
            env.bounds.check_size(len(str(sep)) * max(0, len(items) - 1)
                                  + sum(len(x) for x in items if isinstance(x, str)))
            args = (*args[:value_at], items, *args[value_at + 1:])
        result = func(*args, **kwargs)
        if name == "items":  # a generator prints as its address: list the pairs instead
            result = list(result)
        return env.bounds.check(result)

    return bounded


def _check_binop(bounds: _Bounds, operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too big, before computing it."""
    sized = (str, list, tuple)
    if operator == "%" and isinstance(left, str):
        raise TemplateError(f"formatting with '%' is not allowed; {RULE}")
    if operator == "+" and isinstance(left, sized) and isinstance(right, sized):
        bounds.check_size(len(left) + len(right))
    if operator == "*":
        seq, count = (left, right) if isinstance(left, sized) else (right, left)
        if isinstance(seq, sized) and isinstance(count, int):
            bounds.check_size(len(seq) * max(count, 0))
        elif isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateError(f"a number in the template passes {MAX_INT_BITS} bits")
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
        if right > 0 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateError(f"a number in the template passes {MAX_INT_BITS} bits")


def _steps(bounds: _Bounds, iterable: Any) -> Iterator[Any]:
    for item in iterable:
        bounds.tick()
        yield item


def _check_nodes(tree: Any) -> None:
    """Refuse every construct outside the allowlist, and every filter outside FILTERS."""
    from jinja2 import nodes

    blocks = (nodes.For, nodes.If, nodes.With, nodes.FilterBlock, nodes.AssignBlock)
    count = 0
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise TemplateError(f"the template has more than {MAX_NODES} parts; simplify it")
        if isinstance(node, blocks):
            depth += 1
            if depth > MAX_BLOCK_DEPTH:
                raise TemplateError(f"line {node.lineno} of the prompt: blocks nest more than "
                                    f"{MAX_BLOCK_DEPTH} deep")
        stack.extend((child, depth) for child in node.iter_child_nodes())
    for node in tree.find_all(nodes.Node):
        kind = type(node).__name__
        if kind not in _ALLOWED_NODES:
            why = _WHY_NOT.get(kind, f"'{kind}' is not allowed")
            raise TemplateError(f"line {node.lineno} of the prompt: {why}; {RULE}")
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise TemplateError(f"line {node.lineno} of the prompt: filter '{node.name}' is not allowed; {RULE}")


def _bound_loops_and_joins(tree: Any) -> None:
    """Make every loop count its steps, and every `~` check the length of what it makes."""
    from jinja2 import nodes

    for loop in list(tree.find_all(nodes.For)):
        loop.iter = nodes.Filter(loop.iter, "_steps", [], [], None, None, lineno=loop.lineno)
    for parent in list(tree.find_all(nodes.Node)):
        for field in parent.fields:
            child = getattr(parent, field)
            if isinstance(child, nodes.Concat):
                setattr(parent, field, nodes.Filter(child, "_checked", [], [], None, None, lineno=child.lineno))
            elif isinstance(child, list):
                setattr(parent, field, [
                    nodes.Filter(c, "_checked", [], [], None, None, lineno=c.lineno) if isinstance(c, nodes.Concat)
                    else c for c in child])
