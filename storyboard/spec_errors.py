"""A storyboard file the schema check declined, validated by pydantic: every problem in a sentence.

`storyboard.spec_tables` reads a valid file without pydantic; whatever it declines comes here.
pydantic's models (storyboard.spec) either accept the file after all (a form the check does not
know) or list its errors, each made one sentence that names the file, the line, the table, the
shot and the field, with a suggestion where one fits.
"""

from __future__ import annotations

import re
from typing import Any

from storyboard import spec_tables
from storyboard.errors import StoryboardFileError, did_you_mean
from storyboard.problems import Problems, Where
from storyboard.spec_tables import Table


def validated(where: Where, raw: dict[str, Any]) -> Table:
    """The file's tables by pydantic, for a file the schema check declined: every problem worded, or (a
    form that check does not know) the same tables it would have given."""
    from pydantic import ValidationError

    from storyboard.spec import StoryboardFile

    try:
        return spec_tables.from_model(StoryboardFile.model_validate(raw))
    except ValidationError as exc:
        errors = exc.errors()
    problems = Problems(where.path)
    for err in _relevant(errors):
        problems.add(_explain(where, raw, err))
    problems.raise_any()
    raise StoryboardFileError(f"{where.path}: invalid storyboard")  # pydantic always names at least one error


def _relevant(errors: list[Any]) -> list[Any]:
    """Pydantic's errors without union-branch noise, one per field."""
    # a table given where `str | FrameRef` is allowed: the string branch's complaint is noise
    relevant = [e for e in errors if not ("str" in e["loc"] and isinstance(e.get("input"), dict))] or errors
    # a number given where `"first" | "last" | seconds` is allowed: the literal branch's complaint is noise
    relevant = [e for e in relevant if not (e["type"] == "literal_error" and isinstance(e.get("input"), int | float)
                                            and not isinstance(e.get("input"), bool))] or relevant
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for err in relevant:
        field = tuple(_names(err["loc"]))
        if field not in seen:
            seen.add(field)
            unique.append(err)
    return unique


def _names(loc: Any) -> list[str | int]:
    """The loc without pydantic's union-branch labels such as 'str', 'FrameRef', 'literal[...]'."""
    return [p for p in loc if isinstance(p, int) or not (p[:1].isupper() or "[" in p or p.startswith("constrained-")
                                                          or p in ("str", "float", "int", "bool"))]


def _explain(where: Where, raw: dict[str, Any], err: Any) -> StoryboardFileError:
    """One pydantic error as one sentence that names the table, the shot and the field."""
    from storyboard import spec as model
    from storyboard.edit.rules import explain

    if (named := explain(where, raw, err)) is not None:  # an entry of an [edit] array names itself
        return named
    loc = list(err["loc"])
    at = tuple(_names(loc))
    shot = None
    if loc[:1] == ["shot"] and len(loc) > 1 and isinstance(loc[1], int):
        entry = raw.get("shot", [])[loc[1]]
        shot = str(entry["id"]) if isinstance(entry, dict) and isinstance(entry.get("id"), str) else f"#{loc[1] + 1}"
        loc = loc[2:]
    names = [str(p) for p in _names(loc) if isinstance(p, str)]
    if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str) and names[-1:] != [loc[-1]]:
        names.append(loc[-1])  # the unknown key itself, though named like a union label ("None", "Foo", "str")
    if shot is None and len(names) == 1 and err["type"] == "extra_forbidden":
        return where.error(f"unknown table '{names[0]}'{did_you_mean(names[0], model.StoryboardFile.model_fields)}"
                           f"; the tables are {', '.join(model.StoryboardFile.model_fields)}", at=at)
    table = f"[{names[0]}] " if shot is None and names else ""
    fields = names if shot is not None else names[1:]
    if err["type"] == "extra_forbidden":
        key = fields[-1] if fields else "?"
        owners: dict[str | None, type] = {
            "film": model.Film, "edit": model.Edit, "transition": model.Transition, "audio": model.AudioEdit,
            "first_frame": model.FrameRef, "last_frame": model.FrameRef, "references": model.FrameRef,
            "assets": model.AssetTable, "cache": model.CacheTable,
        }
        parent = fields[-2] if len(fields) > 1 else (None if shot is not None else names[0])
        owner = model.ShotSpec if parent is None else owners.get(parent, model.FrameRef)
        where_ = f" in '{parent}'" if parent and shot is not None else ""
        return where.error(f"{table}unknown key '{key}'{where_}{did_you_mean(key, owner.model_fields)}", shot, at=at)
    message = re.sub(r" or instance of \w+", "", err["msg"]).replace("valid dictionary", "table")
    if err["type"] == "missing":
        message = "is required"
    value = err.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) and err["type"] != "missing" else ""
    field = ".".join(fields) or None
    if shot is None:
        prefix = f"{table}field '{field}': " if field else table
        return where.error(f"{prefix}{message}{shown}", at=at)
    return where.error(f"{message}{shown}", shot, field, at=at)
