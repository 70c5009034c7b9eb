"""A cached shot whose frame PNG is gone is not paid for again: the frames come back from its clip."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from storyboard.build import build, open_project, plan_project
from storyboard.executor import Outcome
from storyboard.media import pixel_digest

BOARD = """
[film]
provider = "fake"
duration = 4

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"

[[shot]]
id = "b"
continues = "a"
prompt = "the lamp turns on"
"""


@pytest.fixture
def built(write_board, fake_provider):
    path = write_board(BOARD)
    build(open_project(path))
    assert sorted(shot for shot, _ in fake_provider.calls) == ["a", "b"]
    fake_provider.reset()
    return path


@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_a_lost_frame_is_extracted_again_and_nothing_is_paid_again(built, fake_provider, damage):
    project = open_project(built)
    shot = project.lock.shots["a"]
    last = project.cache.object_path(shot["last"])
    film = (built.parent / "build" / "film.mp4").read_bytes()
    if damage == "deleted":
        last.unlink()
    else:
        last.write_bytes(last.read_bytes()[:-40] + b"\0" * 40)

    steps, _ = plan_project(open_project(built))
    assert {s.shot: s.status for s in steps} == {"a": "cached", "b": "cached"}
    report = build(open_project(built))

    assert fake_provider.calls == []
    assert {s: r.outcome for s, r in report.shots.items()} == {"a": Outcome.CACHED, "b": Outcome.CACHED}
    restored = open_project(built).lock.shots["a"]["last"]
    png = np.asarray(Image.open(project.cache.object_path(restored)).convert("RGB"))
    # the restored frame has the pixels that keyed b's request
    assert pixel_digest(png) == project.lock.shots["b"]["components"]["first_frame"]
    assert (built.parent / "build" / "film.mp4").read_bytes() == film


def test_a_lost_clip_is_still_a_miss(built, fake_provider):
    project = open_project(built)
    project.cache.object_path(project.lock.shots["b"]["clip"]).unlink()
    project.cache.object_path(project.lock.shots["b"]["last"]).unlink()
    steps, _ = plan_project(open_project(built))
    assert {s.shot: s.status for s in steps}["b"] == "to run"
    build(open_project(built))
    assert [shot for shot, _ in fake_provider.calls] == ["b"]
