"""The schema check (storyboard.spec_tables) reads a file exactly as pydantic's models would.

A file the check accepts must be one pydantic accepts, read into equal tables with values of the
same types (an int and a float key a shot differently); a file pydantic accepts must be accepted
by the check too, but for the few values it leaves to pydantic on purpose (non-finite floats, ints
past 2**53, a pattern's string ending in a newline, the lax types of a [providers.NAME] table). Checked on every board of the project and on
boards hypothesis draws from the schema and then breaks.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from storyboard import spec_tables
from storyboard.spec import StoryboardFile
from tests.fuzz_strategies import boards, nested

ROOT = Path(__file__).resolve().parent.parent
BOARDS = sorted([*ROOT.glob("examples/*/storyboard.toml"), *ROOT.glob("tests/corpus/*.toml")])

RICH = {
    "film": {"title": "t", "output": "build/x.mp4", "provider": "animatic", "model": "m", "resolution": "1080p",
             "aspect_ratio": "9:16", "duration": 6, "seed": 7, "negative_prompt": "blur", "audio": False},
    "vars": {"hero": "a fox", "list": ["a", 1], "table": {"k": 1.5}},
    "assets": {"keeper": "assets/keeper.png", "table": {"path": "assets/top.png"}, "far": {"url": "https://x/y.png"}},
    "shot": [
        {"id": "a", "prompt": "{{ hero }}", "duration": 4.0, "seed": 0, "take": 2, "takes": 3, "pick": 2,
         "references": ["keeper", {"shot": "b", "frame": 1}, {"shot": "b", "frame": "first"}],
         "options": {"person_generation": "allow_adult", "n": 2, "f": 0.5, "b": True}},
        {"id": "b", "prompt": "p", "first_frame": {"shot": "a"}, "last_frame": "keeper", "resolution": "4k",
         "aspect_ratio": "16:9", "audio": True, "provider": "animatic", "model": "x", "negative_prompt": "n"},
        {"id": "c", "prompt": "p", "extends": "b", "continues": "a", "edits": "a", "duration": 7.5},
    ],
    "edit": {
        "transition": {"kind": "crossfade", "duration": 1, "color": "#ABCdef"},
        "audio": {"normalize": True, "loudness": -16},
        "clip": [{"shot": "a", "in": 1, "out": 2.5, "volume": 0, "hold": 1,
                  "transition": {"kind": "dip", "duration": 0.25, "color": "#ffffff"}},
                 {"shot": "b"}],
        "title": [{"text": "Hello", "before": "a", "duration": 2, "background": "#102030"},
                  {"text": "End", "after": "b"}],
        "text": [{"shot": "a", "text": "hi", "start": 0, "end": 1, "position": "top"}],
        "sound": [{"path": "music.wav", "start": 1, "in": 0.5, "out": 3, "gain": -6, "fade_in": 1, "fade_out": 2,
                   "duck": True}, {"asset": "keeper"}],
        "subtitles": {"path": "subs.srt", "burn": True},
    },
    "providers": {"vertex": {"model": "veo", "concurrency": 2, "rpm": 10, "poll_interval": 1, "timeout": 60,
                             "allow_retired": True, "project": "p"}},
    "cache": {"remote": "s3://bucket/prefix", "remote_write": False},
}
"""A board with every table and field of the format, valid."""


def typed(value: Any) -> Any:
    """`value` with every scalar's type spelled out, so 1 and 1.0 (and True and 1) differ."""
    if isinstance(value, spec_tables.Table):
        return type(value).__name__, tuple((name, typed(getattr(value, name))) for name in value._fields)
    if isinstance(value, dict):
        return "dict", tuple((key, typed(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return type(value).__name__, tuple(typed(item) for item in value)
    return type(value).__name__, repr(value)


def left_to_pydantic(value: Any) -> bool:
    """Whether `value` holds what the check leaves to pydantic on purpose."""
    if isinstance(value, dict):
        return any(left_to_pydantic(item) for item in value.values())
    if isinstance(value, list):
        return any(left_to_pydantic(item) for item in value)
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) > 2 ** 53
    return isinstance(value, str) and value.endswith("\n")


def assert_same_reading(raw: dict[str, Any]) -> spec_tables.Table | None:
    fast = spec_tables.check(raw)
    try:
        model = StoryboardFile.model_validate(raw)
    except ValidationError:
        assert fast is None, f"the check accepted a file pydantic rejects: {raw!r}"
        return None
    slow = spec_tables.from_model(model)
    if fast is None:
        # [providers.NAME] tables are read laxly by their models ("2" is 2): the check leaves them to pydantic
        lax = bool(raw.get("providers")) and spec_tables.check({**raw, "providers": {}}) is not None
        assert lax or left_to_pydantic(raw), f"the check declined a file pydantic accepts: {raw!r}"
    else:
        assert typed(fast) == typed(slow), first_difference(typed(fast), typed(slow))
    return fast


def first_difference(fast: Any, slow: Any, at: str = "") -> str:
    """Where two typed readings first differ, for the failure message."""
    if isinstance(fast, tuple) and isinstance(slow, tuple) and len(fast) == len(slow):
        for index, (one, other) in enumerate(zip(fast, slow)):
            if one != other:
                return first_difference(one, other, f"{at}/{index}")
    return f"at {at}: the check read {fast!r}, pydantic {slow!r}"


def test_the_rich_board_is_read_by_the_check_as_pydantic_reads_it() -> None:
    tables = assert_same_reading(RICH)
    assert tables is not None
    assert tables.edit.clip[0].in_ == 1.0 and type(tables.edit.clip[0].in_) is float  # `in` in the file
    assert tables.shot[0].references[1].frame == 1.0 and type(tables.shot[0].references[1].frame) is float
    assert tables.shot[2].duration == 7.5 and tables.film.duration == 6 and type(tables.film.duration) is int
    assert tables.shot[1].references == [] and tables.shot[1].options == {}  # pydantic's default factories


def test_an_empty_file_gets_every_default() -> None:
    tables = assert_same_reading({})
    assert tables is not None
    assert (tables.film.output, tables.film.duration, tables.edit.transition.kind) == ("build/film.mp4", 8, "cut")
    assert tables.cache == spec_tables.default_table("CacheTable")


@pytest.mark.parametrize("path", BOARDS, ids=[p.stem for p in BOARDS])
def test_every_board_of_the_project_is_read_alike(path: Path) -> None:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        pytest.skip("not TOML: the loader stops before any check")
    assert_same_reading(raw)


def test_the_models_fields_are_the_tables_fields() -> None:
    from storyboard import spec

    assert "Film" in spec_tables.TABLES and "EditClip" in spec_tables.TABLES
    for name, table in spec_tables.TABLES.items():
        assert sorted(table._fields) == sorted(getattr(spec, name).model_fields), name


def test_the_validators_beyond_the_schema_are_kept() -> None:
    for table, value in (("film", {"output": "../x.mp4"}), ("film", {"output": "film.mov"}),
                         ("cache", {"remote": "../elsewhere"})):
        assert spec_tables.check({table: value}) is None
        with pytest.raises(ValidationError):
            StoryboardFile.model_validate({table: value})


def test_tables_are_read_only_and_replaced_whole() -> None:
    tables = spec_tables.check(RICH)
    with pytest.raises(AttributeError):
        tables.film.provider = "vertex"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del tables.film.provider
    changed = tables.film.replace(provider="vertex")
    assert (changed.provider, tables.film.provider, changed.model) == ("vertex", "animatic", "m")


def test_a_valid_file_is_loaded_without_importing_pydantic(tmp_path: Path) -> None:
    board = tmp_path / "storyboard.toml"
    board.write_text('[film]\nduration = 4\n\n[[shot]]\nid = "a"\nprompt = "a lighthouse"\n'
                     '\n[edit]\ntransition = { kind = "crossfade", duration = 1 }\n')
    code = ("import sys; from storyboard.load import load; board = load(sys.argv[1]); "
            "print(board.edit.transition.kind, 'pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(board)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["crossfade", "False"]


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document: the keys and indexes that lead to it."""
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*at, index))
    return found


@st.composite
def broken_rich_boards(draw: st.DrawFn) -> dict[str, Any]:
    """The rich board with one to three places given another value, dropped, or an unknown key."""
    import copy

    doc = copy.deepcopy(RICH)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for step in at[:-1]:
            parent = parent[step]
        choice = draw(st.integers(0, 9))
        if choice == 0 and isinstance(parent, dict):
            del parent[at[-1]]
        elif choice == 1 and isinstance(parent[at[-1]], dict):
            parent[at[-1]]["nope"] = 1
        else:
            parent[at[-1]] = draw(st.one_of(nested, st.sampled_from([0, 1, -1, 0.5, 2**53 + 1, "", "first", "#000000",
                                                                     None, True, [], {}])))
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_rich_boards())
def test_a_broken_rich_board_is_read_alike(raw: dict[str, Any]) -> None:
    assert_same_reading(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(boards())
def test_a_fuzzed_board_is_read_alike(raw: dict[str, Any]) -> None:
    if "Raw" in repr(type(raw)) or any(type(v).__name__ == "Raw" for v in _leaves(raw)):
        return  # a deep TOML fragment: the parser's matter, not a value
    assert_same_reading(raw)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]
