"""A valid storyboard file read into its tables without pydantic, by its own JSON schema.

Importing pydantic and building the file's models costs ≈ 0.2 s of CPU in every command, as much
as planning 1,000 cached shots. The JSON schema that `storyboard schema` generates from those
models (storyboard.spec) says everything they check but two validators, the film's output path
and the cache's remote, which are plain functions used by both. So a file is first checked here
against the schema, strictly as the models check it, and read into `Table`s: read-only objects
with the models' field names and the values pydantic would give, an int in a float field made a
float. Anything this check does not accept, an error or a form it does not know (or a lax value in
a `[providers.NAME]` table, "2" for 2, which its model takes), goes to pydantic,
which words every problem of the file; a file pydantic accepts all the same is read into the same
Tables from its result (`from_model`). tests/test_spec_tables.py checks that both ways give equal
tables, value types included, on every board of the project and on fuzzed ones.

A field named like a Python keyword is written with its alias in the file and the schema (`in`)
and read as the model's name for it (`in_`).
"""

from __future__ import annotations

import functools
import json
import keyword
import math
import re
from collections.abc import Callable
from pathlib import Path
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

    _fields: tuple[str, ...] = ()
    _keys: frozenset[str] = frozenset()

    def __init__(self, **values: Any) -> None:
        if values.keys() != self._keys:
            raise TypeError(f"{type(self).__name__} takes exactly {', '.join(self._fields)}")
        object.__setattr__(self, "__dict__", values)  # one assignment, not one per field: a plan makes thousands

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use replace()")

    def __delattr__(self, name: str) -> None:
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
    # beside this module, read as a file (importlib.resources costs a command ~3 ms of imports)
    schema = json.loads((Path(__file__).parent / "data" / SCHEMA_FILE).read_text(encoding="utf-8"))
    tables = {}
    for name, definition in {**schema["$defs"], "StoryboardFile": schema}.items():
        fields = tuple(_attribute(p) for p in definition.get("properties", {}))
        tables[name] = type(name, (Table,), {"_fields": fields, "_keys": frozenset(fields), "__module__": __name__,
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

Check = Callable[[Any], Any]
"""A compiled schema node: the value as the models give it, or _Declined."""


def check(raw: dict[str, Any]) -> Table | None:
    """The file's tables when the file is valid by this check, else None (ask pydantic)."""
    if not _USABLE:
        return None
    try:
        return _compiled()(raw)
    except (_Declined, RecursionError):
        return None


def from_model(spec: Any) -> Table:
    """The tables of a file pydantic validated (its StoryboardFile): the same as `check` gives."""
    return _trusted(_SCHEMA, spec.model_dump(by_alias=True))


def default_table(name: str) -> Table:
    """A table with every field at its default (`[cache]` when the file has none)."""
    return _compile({"$ref": f"#/$defs/{name}"}, {})({})


@functools.cache
def _compiled() -> Check:
    return _compile(_SCHEMA, {})


# ---- the check, compiled once from the schema into one function per node ---------------------


def _compile(schema: dict[str, Any], refs: dict[str, Check]) -> Check:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in refs:
            refs[name] = _compile_table(name, _SCHEMA["$defs"][name], refs)
        return refs[name]
    if "anyOf" in schema:
        return _compile_any_of([_compile(branch, refs) for branch in schema["anyOf"]],
                               any(branch.get("type") == "null" for branch in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        return _compile_table("StoryboardFile", schema, refs)
    if kind == "object":
        return _compile_dict(schema.get("additionalProperties", True), refs)
    if kind == "array":
        return _compile_array(_compile(schema["items"], refs), schema.get("maxItems"))
    return _compile_scalar(schema, kind)


def _compile_any_of(branches: list[Check], nullable: bool) -> Check:
    """The first branch that takes the value (the unions here have one branch per type)."""
    def any_of(value: Any) -> Any:
        if value is None and nullable:
            return None
        for branch in branches:
            try:
                return branch(value)
            except _Declined:
                continue
        raise _Declined
    return any_of


def _compile_dict(values: Any, refs: dict[str, Check]) -> Check:
    item = None if values is True else _compile(values, refs)

    def table_of(value: Any) -> Any:
        if type(value) is not dict:
            raise _Declined
        return dict(value) if item is None else {key: item(entry) for key, entry in value.items()}
    return table_of


def _compile_array(item: Check, most: int | None) -> Check:
    def array(value: Any) -> Any:
        if type(value) is not list or (most is not None and len(value) > most):
            raise _Declined
        return [item(entry) for entry in value]
    return array


def _compile_scalar(schema: dict[str, Any], kind: str | None) -> Check:
    """A strict scalar within its bounds; an int given for a number is a float, as pydantic makes it."""
    if kind == "string":
        return _compile_string(schema)
    if kind in ("boolean", "null"):
        wanted = bool if kind == "boolean" else type(None)

        def exact(value: Any) -> Any:
            if type(value) is not wanted:
                raise _Declined
            return value
        return exact
    if kind not in ("integer", "number"):
        raise ValueError(f"type {kind!r}")  # _understood() lets no other type through
    least, most = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    above, below = schema.get("exclusiveMinimum", -math.inf), schema.get("exclusiveMaximum", math.inf)
    as_float = kind == "number"

    def number(value: Any) -> Any:
        if as_float and type(value) is int and abs(value) <= _EXACT:
            value = float(value)
        if type(value) is not (float if as_float else int) or (as_float and not math.isfinite(value)):
            raise _Declined
        if not (least <= value <= most and above < value < below):
            raise _Declined
        return value
    return number


def _compile_string(schema: dict[str, Any]) -> Check:
    choices = frozenset(schema["enum"]) if "enum" in schema else None
    shortest, longest = schema.get("minLength", 0), schema.get("maxLength", math.inf)
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None

    def string(value: Any) -> Any:
        if type(value) is not str or (choices is not None and value not in choices):
            raise _Declined
        if not shortest <= len(value) <= longest:
            raise _Declined
        # Python's `$` also matches before a final newline; the model's regex does not
        if pattern is not None and (value.endswith("\n") or not pattern.search(value)):
            raise _Declined
        return value
    return string


def _compile_table(name: str, definition: dict[str, Any], refs: dict[str, Check]) -> Check:
    """A model's table: known keys only (unless it allows others), the required ones given, defaults filled."""
    cls = TABLES[name]
    fields: dict[str, tuple[str, Check, Callable[[Any], Any] | None]] = {}
    fixed: dict[str, Any] = {}  # defaults that are immutable, made once
    made: dict[str, Callable[[], Any]] = {}  # defaults that are containers or tables, made for each table
    for prop, schema in definition["properties"].items():
        attribute, item = _attribute(prop), _compile(schema, refs)
        fields[prop] = attribute, item, _VALIDATORS.get((name, prop))
        if "default" not in schema:  # a default_factory: pydantic leaves it out of the schema
            if prop not in definition.get("required", ()):
                made[attribute] = list if schema.get("type") == "array" else dict
        elif isinstance(schema["default"], dict | list):
            made[attribute] = functools.partial(item, schema["default"])
        else:
            fixed[attribute] = item(schema["default"])
    required = tuple(definition.get("required", ()))
    closed = definition.get("additionalProperties", True) is False

    def table(value: Any) -> Any:
        if type(value) is not dict or any(prop not in value for prop in required):
            raise _Declined
        values = dict(fixed)
        for attribute, make in made.items():
            values[attribute] = make()
        for prop, given in value.items():
            if prop not in fields:
                if closed:
                    raise _Declined
                continue
            attribute, item, validator = fields[prop]
            values[attribute] = item(given)
            if validator is not None and given is not None and validator(given) is not None:
                raise _Declined
        return cls(**values)
    return table


# ---- tables from a file pydantic validated ----------------------------------------------------


def _trusted(schema: dict[str, Any], value: Any) -> Any:
    """A value pydantic made, with the tables made where the schema has them (nothing checked)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _trusted_table(name, _SCHEMA["$defs"][name], value)
    if "anyOf" in schema:
        branch = next((b for b in schema["anyOf"] if _shaped(b, value)), None)
        return value if branch is None else _trusted(branch, value)
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        return _trusted_table("StoryboardFile", schema, value)
    if kind == "object":
        values = schema.get("additionalProperties", True)
        return dict(value) if values is True else {key: _trusted(values, item) for key, item in value.items()}
    if kind == "array":
        return [_trusted(schema["items"], item) for item in value]
    return value


def _trusted_table(name: str, definition: dict[str, Any], value: dict[str, Any]) -> Table:
    return TABLES[name](**{_attribute(prop): _trusted(schema, value[prop])
                           for prop, schema in definition["properties"].items()})


def _shaped(schema: dict[str, Any], value: Any) -> bool:
    """Whether a trusted value has the branch's shape: a table, an array or a scalar."""
    if "anyOf" in schema:
        return any(_shaped(branch, value) for branch in schema["anyOf"])
    kind = "object" if "$ref" in schema else schema.get("type")
    return isinstance(value, dict) if kind == "object" else isinstance(value, list) if kind == "array" \
        else not isinstance(value, dict | list)
