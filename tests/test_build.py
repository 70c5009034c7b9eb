"""The engine end to end on the fake provider: what reruns, what is cached, the film."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from storyboard.build import build, open_project, plan_project
from storyboard.executor import Outcome

BOARD = """
[film]
provider = "fake"
seed = 3
resolution = "360p"  # the film's size is not the point here: a quarter of 720p's stitch

[vars]
hero = "a red fox"
place = "a snowy forest"

[assets]
fox = "assets/fox.png"

[[shot]]
id = "a"
prompt = "{{ hero }} wakes up"
duration = 4

[[shot]]
id = "b"
continues = "a"
prompt = "{{ hero }} runs"
duration = 4

[[shot]]
id = "c"
extends = "b"
prompt = "the chase goes on"

[[shot]]
id = "d"
first_frame = { shot = "a", frame = 1.5 }
prompt = "{{ place }} at night"
duration = 4

[[shot]]
id = "e"
references = ["fox"]
prompt = "portrait of {{ hero }}"
"""


def rendered(fake) -> list[str]:
    return sorted(shot for shot, _ in fake.calls)


def run_build(path: Path, **kwargs):
    project = open_project(path)
    return project, build(project, **kwargs)


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    """The board built once; tests copy it (cache included) instead of rendering it again."""
    import storyboard.providers as providers
    from tests.fake_provider import FakeProvider

    saved = dict(providers.BUILTIN)
    providers.BUILTIN["fake"] = "tests.fake_provider:FakeProvider"
    FakeProvider.reset()
    root = tmp_path_factory.mktemp("built") / "board"
    (root / "assets").mkdir(parents=True)
    Image.new("RGB", (64, 36), (200, 80, 20)).save(root / "assets" / "fox.png")
    path = root / "storyboard.toml"
    path.write_text(BOARD)
    try:
        _, report = run_build(path)
    finally:
        providers.BUILTIN.clear()
        providers.BUILTIN.update(saved)
    return path, report, sorted(shot for shot, _ in FakeProvider.calls)


@pytest.fixture
def board(first_build, fake_provider, tmp_path):
    """A copy of the built board and its cache; the fake provider's call log starts empty."""
    import shutil

    copy = tmp_path / "board"
    shutil.copytree(first_build[0].parent, copy)
    (copy / ".storyboard" / "hashes.json").unlink()
    return copy / "storyboard.toml"


def test_first_build_renders_all_and_makes_the_film(first_build):
    board, report, calls = first_build
    assert calls == ["a", "b", "c", "d", "e"]
    assert report.count(Outcome.RENDERED) == 5
    film = board.parent / "build" / "film.mp4"
    assert report.film.path == film and film.is_file()
    # default sequence: a, c (replaces b, which it extends), d, e -> 4 + (4 + 7) + 4 + 8
    with av.open(str(film)) as container:
        video = container.streams.video[0]
        assert container.streams.audio, "the film has an audio stream"
        seconds = float(video.duration * video.time_base)
    assert abs(seconds - 27.0) <= 1 / 24 + 1e-6


def test_rebuild_calls_no_provider_and_renders_nothing(board, fake_provider):
    film = board.parent / "build" / "film.mp4"
    before = film.stat().st_mtime_ns
    _, report = run_build(board)
    assert fake_provider.calls == []
    assert report.count(Outcome.CACHED) == 5
    assert report.film.stitched is False
    assert film.stat().st_mtime_ns == before


def no_pool(*args, **kwargs):
    raise AssertionError("a build with every shot cached started the thread pool")


def test_a_build_with_every_shot_cached_commits_them_without_the_pool(board, fake_provider, monkeypatch):
    import concurrent.futures

    from storyboard.lockfile import LockFile, lock_path

    before = LockFile(lock_path(board)).shots
    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", no_pool)
    events = []
    _, report = run_build(board, on_event=lambda shot, state, info: events.append((shot, state)))
    assert fake_provider.calls == []
    assert events == [(shot, "cached") for shot in ["a", "b", "c", "d", "e"]]  # each told once, in order
    assert {s: r.outcome for s, r in report.shots.items()} == dict.fromkeys("abcde", Outcome.CACHED)
    assert LockFile(lock_path(board)).shots == before
    assert report.film is not None and report.film.stitched is False


def test_one_shot_to_render_falls_back_to_the_pool_and_tells_each_cached_shot_once(board, fake_provider):
    board.write_text(board.read_text().replace("portrait of {{ hero }}", "portrait of {{ hero }} at noon"))
    events = []
    _, report = run_build(board, on_event=lambda shot, state, info: events.append((shot, state)))
    assert rendered(fake_provider) == ["e"]
    assert [shot for shot, state in events if state == "cached"] == ["a", "b", "c", "d"]
    assert report.count(Outcome.CACHED) == 4 and report.count(Outcome.RENDERED) == 1


def test_editing_a_prompt_reruns_exactly_the_shot_and_its_dependants(board, fake_provider):
    board.write_text(board.read_text().replace("{{ hero }} runs", "{{ hero }} sprints"))
    project = open_project(board)
    steps, _ = plan_project(project)
    reasons = {s.shot: (s.status, s.reason) for s in steps}
    assert reasons["b"] == ("to run", "prompt changed")
    assert reasons["c"] == ("may rerun", "upstream 'b' reruns; cached if 'b' comes out as before")
    assert reasons["a"][0] == "cached"
    build(project)
    assert rendered(fake_provider) == ["b", "c"]


def test_editing_a_var_reruns_exactly_the_shots_whose_prompt_changed(board, fake_provider):
    board.write_text(board.read_text().replace('place = "a snowy forest"', 'place = "a pine forest"'))
    run_build(board)
    assert rendered(fake_provider) == ["d"]


def test_reverting_an_edit_is_a_cache_hit(board, fake_provider):
    original = board.read_text()
    board.write_text(original.replace("seed = 3", "seed = 4"))
    run_build(board)
    fake_provider.reset()
    board.write_text(original)
    _, report = run_build(board)
    assert fake_provider.calls == []
    assert report.film.stitched is False


def test_changing_an_asset_reruns_the_shot_that_uses_it(board, fake_provider):
    Image.new("RGB", (64, 36), (10, 200, 10)).save(board.parent / "assets" / "fox.png")
    steps, _ = plan_project(open_project(board))
    assert {s.shot: s.reason for s in steps}["e"] == "reference 'fox' changed"
    run_build(board)
    assert rendered(fake_provider) == ["e"]


def test_take_is_part_of_the_key(board, fake_provider):
    board.write_text(board.read_text().replace('prompt = "portrait of {{ hero }}"',
                                               'prompt = "portrait of {{ hero }}"\ntake = 2'))
    run_build(board)
    assert rendered(fake_provider) == ["e"]


def test_a_corrupted_object_is_detected_and_regenerated(board, fake_provider):
    project = open_project(board)
    clip = project.cache.object_path(project.lock.shots["e"]["clip"])
    clip.write_bytes(clip.read_bytes()[:-100] + b"x" * 100)
    fake_provider.reset()
    steps, _ = plan_project(open_project(board))
    assert {s.shot: s.reason for s in steps}["e"] == "not in the cache"
    run_build(board)
    assert rendered(fake_provider) == ["e"]


def test_handed_off_frame_is_the_exact_last_frame_of_the_source(board):
    from storyboard.media import pixel_digest

    project = open_project(board)
    cache, lock = project.cache, project.lock
    a_clip = cache.object_path(lock.shots["a"]["clip"])
    last_decoded = decoded_frames(a_clip)[-1]
    b_first_input = lock.shots["b"]["components"]["first_frame"]
    handed = np.asarray(Image.open(cache.object_path(lock.shots["a"]["last"])).convert("RGB"))
    assert np.array_equal(handed, last_decoded)
    # the request names the frame by its pixels (storyboard.media.pixel_digest), not its PNG's bytes
    assert b_first_input == pixel_digest(last_decoded) != lock.shots["a"]["last"]


def test_a_failed_shot_skips_its_dependants_and_exits_one(write_board, fake_provider):
    board = write_board(BOARD, fox=(200, 80, 20))
    fake_provider.fail_prompts = {"runs"}
    _, report = run_build(board, keep_going=True)
    assert report.shots["b"].outcome is Outcome.FAILED
    assert report.shots["c"].outcome is Outcome.SKIPPED
    assert {report.shots[s].outcome for s in ("a", "d", "e")} == {Outcome.RENDERED}
    assert report.film is None


def test_two_clean_stitches_give_identical_bytes(board, fake_provider, tmp_path):
    project = open_project(board)
    data = (board.parent / "build" / "film.mp4").read_bytes()
    # a second cache with the same clips: copy only the clips' objects, not the stitch memo
    import shutil

    other = tmp_path / "cache2"
    for shot in project.lock.shots.values():
        for sha in (shot["clip"], shot["first"], shot["last"]):
            dest = other / "objects" / sha[:2] / sha
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(project.cache.object_path(sha), dest)
    shutil.copytree(project.cache.root / "actions", other / "actions")
    for p in (other / "actions").glob("*.json"):
        if '"film"' in p.read_text():
            p.unlink()
    again = open_project(board, cache_dir=other)
    report = build(again)
    assert report.film.stitched is True
    assert report.film.path.read_bytes() == data
