"""A valid storyboard file read into its tables without pydantic, by its own JSON schema.

Importing pydantic and building the file's models costs ≈ 0.2 s of CPU in every command, as much
as planning 1,000 cached shots. The JSON schema that `storyboard schema` generates from those
models (storyboard.spec) says everything they check but two validators, the film's output path
and the cache's remote, which are plain functions used by both. So a file is first checked here
against the schema, strictly as the models check it, and read into `Table`s: read-only objects
with the models' field names and the values pydantic would give, an int in a float field made a
float. Anything this check does not accept, an error or a form it does not know, goes to pydantic,
which words every problem of the file; a file pydantic accepts all the same is read into the same
Tables from its result (`from_model`). tests/test_spec_tables.py checks that both ways give equal
tables, value types included, on every board of the project and on fuzzed ones.

A field named like a Python keyword is written with its alias in the file and the schema (`in`)
and read as the model's name for it (`in_`).
"""

from __future__ import annotations

import copy
import json
import keyword
import math
import re
from importlib.resources import files
from typing import Any

from storyboard import sandbox
from storyboard.model import film_output_problem

SCHEMA_FILE = "storyboard.schema.json"
"""In storyboard/data: the same file as schemas/storyboard.schema.json (tests/test_schema.py keeps both)."""

_EXACT = 2 ** 53
"""An int beyond this is not exactly a float: pydantic decides what it makes of it."""

_KNOWN = frozenset({"$ref", "anyOf", "type", "enum", "default", "description", "title", "minimum", "maximum",
                    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "items",
                    "maxItems", "properties", "required", "additionalProperties"})
"""The keywords this check understands; a schema with another one is left to pydantic."""

_VALIDATORS = {("Film", "output"): film_output_problem, ("CacheTable", "remote"): sandbox.check_remote_shape}
"""The models' field validators beyond the schema: a value one objects to goes to pydantic to be worded."""


class _Declined(Exception):
    """Not accepted here; pydantic says why (or accepts it)."""


class Table:
    """One table of the file as written: read-only, its fields named as the model's."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init__(self, **values: Any) -> None:
        for name in self._fields:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use replace()")

    def replace(self, **changes: Any) -> Table:
        """A copy with some fields changed (unchecked: the caller's values are valid)."""
        return type(self)(**{name: changes.get(name, getattr(self, name)) for name in self._fields})

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self._fields)

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(getattr(self, n) for n in self._fields)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self._fields)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self).__name__, {n: getattr(self, n) for n in self._fields})


def _rebuild(name: str, values: dict[str, Any]) -> Table:
    return TABLES[name](**values)


def _attribute(prop: str) -> str:
    return prop + "_" if keyword.iskeyword(prop) else prop


def _load_schema() -> tuple[dict[str, Any], dict[str, type[Table]], bool]:
    """The schema, a Table class per model, and whether every keyword in it is understood here."""
    schema = json.loads(files("storyboard").joinpath("data", SCHEMA_FILE).read_text(encoding="utf-8"))
    tables = {}
    for name, definition in {**schema["$defs"], "StoryboardFile": schema}.items():
        fields = tuple(_attribute(p) for p in definition.get("properties", {}))
        tables[name] = type(name, (Table,), {"__slots__": fields, "_fields": fields, "__module__": __name__,
                                             "__doc__": definition.get("description")})
    return schema, tables, _understood(schema)


def _understood(node: Any) -> bool:
    if isinstance(node, list):
        return all(_understood(item) for item in node)
    if not isinstance(node, dict):
        return True
    for key, value in node.items():
        if key in ("properties", "$defs"):
            if not all(_understood(sub) for sub in value.values()):
                return False
        elif key in ("default", "description", "title", "$schema"):
            continue
        elif key not in _KNOWN or not _understood(value):
            return False
    return True


_SCHEMA, TABLES, _USABLE = _load_schema()
"""TABLES: the class of each model's tables, by the model's name ("Film", "EditClip", ...)."""


def check(raw: dict[str, Any]) -> Table | None:
    """The file's tables when the file is valid by this check, else None (ask pydantic)."""
    if not _USABLE:
        return None
    try:
        return _value(_SCHEMA, raw, checked=True)
    except (_Declined, RecursionError):
        return None


def from_model(spec: Any) -> Table:
    """The tables of a file pydantic validated (its StoryboardFile): the same as `check` gives."""
    return _value(_SCHEMA, spec.model_dump(by_alias=True), checked=False)


def default_table(name: str) -> Table:
    """A table with every field at its default (`[cache]` when the file has none)."""
    return _value({"$ref": f"#/$defs/{name}"}, {}, checked=True)


def _value(schema: dict[str, Any], value: Any, checked: bool) -> Any:
    """`value` as the models would give it; `checked=False` trusts it and only makes the tables."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _table(name, _SCHEMA["$defs"][name], value, checked)
    if "anyOf" in schema:
        return _any_of(schema["anyOf"], value, checked)
    kind = schema.get("type")
    if kind == "object":
        if "properties" in schema:
            return _table("StoryboardFile", schema, value, checked)
        if checked and not isinstance(value, dict):
            raise _Declined
        values = schema.get("additionalProperties", True)
        if values is True:
            return dict(value)
        return {key: _value(values, item, checked) for key, item in value.items()}
    if kind == "array":
        if checked and (not isinstance(value, list) or len(value) > schema.get("maxItems", len(value))):
            raise _Declined
        return [_value(schema["items"], item, checked) for item in value]
    if checked:
        return _scalar(schema, kind, value)
    return value


def _any_of(branches: list[dict[str, Any]], value: Any, checked: bool) -> Any:
    """The first branch that takes the value (the unions here have one branch per type)."""
    if not checked:
        for branch in branches:
            if _shaped(branch, value):
                return _value(branch, value, checked)
        return value
    for branch in branches:
        try:
            return _value(branch, value, checked)
        except _Declined:
            continue
    raise _Declined


def _shaped(schema: dict[str, Any], value: Any) -> bool:
    """Whether a trusted value has the branch's shape: a table, an array or a scalar."""
    if "anyOf" in schema:
        return any(_shaped(branch, value) for branch in schema["anyOf"])
    kind = "object" if "$ref" in schema else schema.get("type")
    return isinstance(value, dict) if kind == "object" else isinstance(value, list) if kind == "array" \
        else not isinstance(value, dict | list)


def _scalar(schema: dict[str, Any], kind: str | None, value: Any) -> Any:
    """A strict scalar, within its bounds; an int given for a number is a float, as pydantic makes it."""
    if kind == "string":
        if type(value) is not str or ("enum" in schema and value not in schema["enum"]):
            raise _Declined
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            raise _Declined
        # Python's `$` also matches before a final newline; the model's regex does not
        if "pattern" in schema and (value.endswith("\n") or not re.search(schema["pattern"], value)):
            raise _Declined
        return value
    if kind == "boolean":
        if type(value) is not bool:
            raise _Declined
        return value
    if kind == "null":
        if value is not None:
            raise _Declined
        return None
    if kind == "integer":
        if type(value) is not int:
            raise _Declined
    elif kind == "number":
        if type(value) is int and abs(value) <= _EXACT:
            value = float(value)
        if type(value) is not float or not math.isfinite(value):
            raise _Declined
    else:
        raise _Declined
    low, high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if not schema.get("minimum", value) <= value <= schema.get("maximum", value) \
            or (low is not None and value <= low) or (high is not None and value >= high):
        raise _Declined
    return value


def _table(name: str, definition: dict[str, Any], value: Any, checked: bool) -> Table:
    """A model's table: known keys only (unless it allows others), the required ones given, defaults filled."""
    properties = definition["properties"]
    if checked:
        closed = definition.get("additionalProperties", True) is False
        if not isinstance(value, dict) or (closed and any(key not in properties for key in value)):
            raise _Declined
        if any(key not in value for key in definition.get("required", ())):
            raise _Declined
    fields = {}
    for prop, schema in properties.items():
        if prop in value:
            item = _value(schema, value[prop], checked)
        elif "default" in schema:
            item = _value(schema, copy.deepcopy(schema["default"]), checked)
        else:  # a default_factory: pydantic leaves it out of the schema
            item = _empty(schema)
        if checked and (validator := _VALIDATORS.get((name, prop))) and item is not None and validator(item):
            raise _Declined
        fields[_attribute(prop)] = item
    return TABLES[name](**fields)


def _empty(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "array":
        return []
    if kind == "object":
        return {}
    raise _Declined  # a required field the schema has no default for: never filled in here
