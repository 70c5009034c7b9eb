"""Provider settings are plain frozen dataclasses; pydantic checks a table only when it must.

Building a provider with its default settings happens at every load, and importing pydantic and
building its validators costs a `storyboard plan` about 0.2 s: so `ProviderSettings` and its
subclasses are stdlib dataclasses. A `[providers.NAME]` table or a shot's `options` whose values
already are what their fields take is read directly (`_plain`); anything else goes to pydantic,
imported then, which validates stdlib dataclasses itself (`__pydantic_config__` forbids unknown
keys) and words every problem as it did when these were pydantic models. A field's own rule is a
`Check` in its `Annotated[...]` metadata: both readings run it, and it costs nothing to define.

A settings subclass must be a dataclass too: `@dataclass(frozen=True, kw_only=True)`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any


class Check:
    """`Annotated` metadata: run `rule` on a field's value once pydantic has validated its type.

    `rule(value)` returns the value or raises ValueError, which pydantic reports as
    "Value error, <message>" at the field, as a `field_validator` did. With `with_data=True`,
    `rule(value, data)` also gets the fields validated before this one (in declaration order).
    """

    def __init__(self, rule: Callable[..., Any], *, with_data: bool = False) -> None:
        self.rule = rule
        self.with_data = with_data

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        """pydantic's hook for annotation metadata: wrap the field's schema with the rule."""
        from pydantic_core import core_schema

        if self.with_data:
            rule = self.rule
            return core_schema.with_info_after_validator_function(lambda value, info: rule(value, info.data),
                                                                  handler(source))
        return core_schema.no_info_after_validator_function(self.rule, handler(source))


def settings_fields(cls: type) -> list[str]:
    """The keys a settings (or options) dataclass takes, in declaration order."""
    if not dataclasses.is_dataclass(cls) and hasattr(cls, "model_fields"):  # a plugin's pydantic model
        return list(cls.model_fields)
    return [f.name for f in dataclasses.fields(cls)]


def validate_settings(cls: type, table: Mapping[str, Any]) -> Any:
    """An instance of the settings (or options) dataclass `cls` from a table as written.

    Raises:
        pydantic.ValidationError: as `cls.model_validate(table)` raised it when `cls` was a
            pydantic model: an unknown key is `extra_forbidden` ("Extra inputs are not permitted"),
            reported after the fields' own errors.
    """
    if not dataclasses.is_dataclass(cls) and hasattr(cls, "model_validate"):  # a plugin's pydantic model
        return cls.model_validate(dict(table))
    if (plain := _plain(cls, table)) is not None:
        return plain
    try:
        return _adapter(cls).validate_python(dict(table))
    except validation_error() as exc:
        raise _as_model_error(exc) from None


def validation_error() -> type[Exception]:
    """pydantic's ValidationError, for `except validation_error():` (Python evaluates it only when
    an exception is being matched, so a table read without pydantic never imports it)."""
    from pydantic import ValidationError

    return ValidationError


def _plain(cls: type, table: Mapping[str, Any]) -> Any:
    """The instance, built without pydantic, when every value already is what its field takes: a str,
    a member of a Literal, a bool, an int (a float field takes it as a float) or a float, passing the
    field's own Checks. None otherwise: pydantic then decides, and words any problem.

    A board's usual table (`project = "p"`, `concurrency = 2`) so costs a load no pydantic import;
    what pydantic would coerce or refuse, and any class whose rules need more, goes to pydantic.
    """
    fields = _plain_fields(cls)
    if fields is None:
        return None
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            return None
        kinds, members, rules = fields[key]
        kind = type(value)
        if kind is str and (str in kinds or value in members):
            pass
        elif kind is bool and bool in kinds:
            pass
        elif kind is int and int in kinds:
            pass
        elif kind is int and float in kinds and abs(value) < 2**53:  # exactly a float
            value = float(value)
        elif kind is float and float in kinds:
            pass
        else:
            return None
        for rule in rules:
            try:
                value = rule(value)
            except (ValueError, AssertionError):  # what pydantic turns into an error: let it word it
                return None
        values[key] = value
    return cls(**values)


@functools.lru_cache(maxsize=64)
def _plain_fields(cls: type) -> dict[str, tuple[frozenset[type], frozenset[str], tuple[Callable[..., Any], ...]]] | None:
    """field -> (the plain types it takes as they are, its Literal's str members, its Checks' rules);
    None when the class needs pydantic for every table (rules on defaults, or on other fields)."""
    import types
    import typing

    if getattr(cls, "__pydantic_config__", {}).get("validate_default"):
        return None
    hints = typing.get_type_hints(cls, include_extras=True)
    out = {}
    for f in dataclasses.fields(cls):
        hint, rules = hints[f.name], ()
        if typing.get_origin(hint) is typing.Annotated:
            hint, *metadata = typing.get_args(hint)
            if not all(isinstance(m, Check) and not m.with_data for m in metadata):
                return None
            rules = tuple(m.rule for m in metadata)
        parts = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        kinds, members = set(), set()
        for part in parts:
            if part in (str, bool, int, float):
                kinds.add(part)
            elif typing.get_origin(part) is typing.Literal:
                members.update(m for m in typing.get_args(part) if type(m) is str)
        if int in kinds and float in kinds:  # pydantic's smart union: leave such a field to it
            kinds -= {int, float}
        out[f.name] = (frozenset(kinds), frozenset(members), rules)
    return out


@functools.lru_cache(maxsize=64)
def _adapter(cls: type) -> Any:
    """pydantic's validator for `cls`, built once per process (building one costs milliseconds)."""
    from pydantic import TypeAdapter

    for klass in cls.__mro__:
        if vars(klass).get("__annotations__") and "__dataclass_fields__" not in vars(klass) and \
                dataclasses.is_dataclass(klass):
            from storyboard.errors import StoryboardError

            raise StoryboardError(f"{klass.__module__}.{klass.__qualname__} extends a settings dataclass but is not "
                                  "one: decorate it with @dataclass(frozen=True, kw_only=True) so its fields count")

    return TypeAdapter(cls)


def _as_model_error(exc: Any) -> Any:
    """The same errors, with a dataclass's "unexpected keyword argument" named as a model's "extra
    inputs" (so messages, and the code that reads them, do not depend on the class's kind)."""
    import typing

    from pydantic import ValidationError
    from pydantic_core import PydanticCustomError, core_schema

    errors = exc.errors()
    if not any(e["type"] == "unexpected_keyword_argument" for e in errors):
        return exc
    builtin = set(typing.get_args(core_schema.ErrorType))

    def kind(error: dict[str, Any]) -> Any:
        if error["type"] == "unexpected_keyword_argument":
            return "extra_forbidden"
        return error["type"] if error["type"] in builtin else PydanticCustomError(error["type"], error["msg"])

    return ValidationError.from_exception_data(exc.title, [
        {"type": kind(e), "loc": e["loc"], "input": e["input"],
         **({"ctx": e["ctx"]} if "ctx" in e and e["type"] in builtin else {})} for e in errors])
