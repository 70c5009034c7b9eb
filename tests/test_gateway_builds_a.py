"""`build` end to end against the Apiframe and Azerion fakes: the library path the CLI takes."""

from __future__ import annotations

from pathlib import Path

import pytest

import storyboard.providers
from storyboard.build import build, open_project, plan_project
from storyboard.errors import StoryboardFileError
from storyboard.executor import Outcome
from storyboard.media import probe
from tests.fakes.apiframe_server import TOP_KEYS, VEO_KEYS, FakeApiframe, apiframe_fake, apiframe_server  # noqa: F401
from tests.fakes.azerion_server import KEYS, FakeAzerion, azerion_fake, azerion_server  # noqa: F401

APIFRAME_KEY = "afk_BUILD-secret-key-9876543210"
AZERION_KEY = "az-BUILD-secret-key-9876543210"

SHOTS = """
[assets]
fox = "assets/fox.png"

[[shot]]
id = "a"
prompt = "a red fox wakes up"
duration = {a}

[[shot]]
id = "b"
continues = "a"
prompt = "the fox runs"
duration = 4

[[shot]]
id = "c"
references = ["fox"]
prompt = "portrait of the fox"
duration = 8
"""
EXTENSION = """
[[shot]]
id = "d"
extends = "a"
prompt = "the fox leaps"
"""


@pytest.fixture
def apiframe(monkeypatch, apiframe_fake):  # noqa: F811
    monkeypatch.setitem(storyboard.providers.BUILTIN, "apiframe", "storyboard.providers.apiframe:ApiframeProvider")
    monkeypatch.setenv("APIFRAME_API_KEY", APIFRAME_KEY)
    monkeypatch.setenv("STORYBOARD_APIFRAME_BASE_URL", apiframe_fake.url)
    apiframe_fake.api_key = APIFRAME_KEY
    yield apiframe_fake
    apiframe_fake.api_key = "afk_fake"


@pytest.fixture
def azerion(monkeypatch, azerion_fake):  # noqa: F811
    monkeypatch.setitem(storyboard.providers.BUILTIN, "azerion", "storyboard.providers.azerion:AzerionProvider")
    monkeypatch.setenv("AZERION_API_KEY", AZERION_KEY)
    monkeypatch.setenv("STORYBOARD_AZERION_BASE_URL", azerion_fake.url)
    azerion_fake.api_key = AZERION_KEY
    yield azerion_fake
    azerion_fake.api_key = "az-fake"


def board(provider: str, shots: str) -> str:
    return f'[film]\nprovider = "{provider}"\n\n[providers.{provider}]\npoll_interval = 0.01\n{shots}'


def assert_secret_kept(root: Path, key: str) -> None:
    """The key is in no file the build wrote: lock, journal, actions, objects."""
    for path in [root / "storyboard.lock", *(root / ".storyboard").rglob("*")]:
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def built(path: Path) -> tuple[object, object]:
    project = open_project(path)
    return project, build(project)


def test_apiframe_builds_the_board_once(apiframe, write_board):
    path = write_board(board("apiframe", SHOTS.format(a=6)), fox=(200, 80, 20))
    project, report = built(path)

    assert not report.failed and report.count(Outcome.RENDERED) == 3
    assert probe(report.film.path).duration == pytest.approx(18.0, abs=0.1)
    assert apiframe.submissions == {"a red fox wakes up": 1, "the fox runs": 1, "portrait of the fox": 1}
    bodies = apiframe.bodies("submit")
    for body in bodies:
        assert set(body) <= TOP_KEYS and set(body["veoParams"]) <= VEO_KEYS
        assert None not in body["veoParams"].values()
    for submitted_at, (name, body) in enumerate(apiframe.requests):
        if name == "submit":
            params = body["veoParams"]
            urls = [params[k] for k in ("image", "last_frame") if k in params] + params.get("reference_images", [])
            assert all(apiframe.uploads[u].seq < submitted_at for u in urls)
    by_prompt = {b["prompt"]: b["veoParams"] for b in bodies}
    assert "image" in by_prompt["the fox runs"] and len(by_prompt["portrait of the fox"]["reference_images"]) == 1
    assert apiframe.count("upload") == 2
    lock = project.lock.shots
    assert {lock[s]["cost"] for s in "abc"} == {15, 10, 20} and {lock[s]["unit"] for s in "abc"} == {"credits"}

    before = apiframe.total()
    _, again = built(path)
    assert again.count(Outcome.CACHED) == 3 and apiframe.total() == before
    assert_secret_kept(path.parent, APIFRAME_KEY)


def test_azerion_builds_the_board_with_an_extension_once(azerion, write_board):
    path = write_board(board("azerion", SHOTS.format(a=8) + EXTENSION), fox=(200, 80, 20))
    _, report = built(path)

    assert not report.failed and report.count(Outcome.RENDERED) == 4
    assert probe(report.film.path).duration == pytest.approx(4 + 8 + 15, abs=0.1)  # 'd' contains 'a'

    assert azerion.submissions == {"a red fox wakes up": 1, "the fox runs": 1, "portrait of the fox": 1,
                                   "the fox leaps": 1}
    bodies = {b["prompt"]: b for b in azerion.bodies("generate")}
    assert all(set(b) <= KEYS and None not in b.values() for b in bodies.values())
    assert bodies["the fox runs"]["image"]["mime_type"] == "image/png"
    assert bodies["portrait of the fox"]["reference_images"][0]["reference_type"] == "subject"
    assert bodies["the fox leaps"]["video"]["mime_type"] == "video/mp4"
    assert not list((path.parent / ".storyboard" / "journal").glob("*.json"))

    before = azerion.total()
    _, again = built(path)
    assert again.count(Outcome.CACHED) == 4 and azerion.total() == before
    assert_secret_kept(path.parent, AZERION_KEY)


def test_plan_prices_apiframe_in_credits_and_notes_that_azerion_cannot_resume(apiframe, azerion, write_board):
    from storyboard.plan_view import view

    project = open_project(write_board(board("apiframe", SHOTS.format(a=4)), fox=(1, 2, 3)))
    pv = view(project, plan_project(project)[0])
    assert [(r.cost, r.unit) for r in pv.rows] == [(10, "credits"), (10, "credits"), (20, "credits")]

    project = open_project(write_board(board("azerion", SHOTS.format(a=4)), "other", fox=(1, 2, 3)))
    pv = view(project, plan_project(project)[0])
    assert [r.cost for r in pv.rows] == [None] * 3
    assert any("azerion answers synchronously" in p for p in pv.problems)
    assert apiframe.total() == 0 and azerion.total() == 0


@pytest.mark.parametrize("provider, extra, says, field", [
    ("apiframe", EXTENSION.replace('prompt = "the fox leaps"', 'prompt = "the fox leaps"\nduration = 8'),
     r"apiframe \(veo-3.1\) cannot extend a clip", "extends"),
    ("apiframe", '[[shot]]\nid = "k"\nprompt = "big"\nresolution = "4k"\n', "does not make 4k", "resolution"),
    ("azerion", '[[shot]]\nid = "k"\nprompt = "big"\nresolution = "4k"\n', "does not make 4k", "resolution"),
    ("apiframe", f'[[shot]]\nid = "k"\nprompt = "{"x" * 4001}"\n', "accepts at most 4000", "prompt"),
])
def test_what_a_gateway_cannot_do_is_refused_before_any_request(apiframe, azerion, write_board, provider, extra,
                                                                 says, field):
    path = write_board(board(provider, SHOTS.format(a=8) + extra), fox=(1, 2, 3))
    with pytest.raises(StoryboardFileError, match=says) as info:
        open_project(path)
    assert info.value.exit_code == 2 and field in info.value.message
    assert apiframe.total() == 0 and azerion.total() == 0


def test_a_long_negative_prompt_fails_the_shot_before_any_request(apiframe, write_board):
    shots = SHOTS.format(a=4).replace('prompt = "a red fox wakes up"',
                                      f'prompt = "a red fox wakes up"\nnegative_prompt = "{"y" * 2001}"')
    _, report = built(write_board(board("apiframe", shots), fox=(1, 2, 3)))
    assert [r.shot for r in report.failed] == ["a"] and "at most 2000" in report.failed[0].error
    assert "a red fox wakes up" not in apiframe.submissions  # 'c' is independent and may have run
