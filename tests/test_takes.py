"""Takes: several candidates per shot, each its own cache entry; `pick` selects the one the film uses."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from storyboard.build import build, consent, open_project, plan_project
from storyboard.cache import cache_key
from storyboard.errors import StoryboardError, StoryboardFileError
from storyboard.executor import Outcome
from storyboard.gc import collect
from storyboard.plan_view import view
from storyboard.takes import all_candidates, continuity, force_batches, list_candidates
from tests._built import copy_built, fake_registered
from tests.fakes.azerion_server import azerion_fake, azerion_server  # noqa: F401

BOARD = """
[film]
provider = "fake"
duration = 4
seed = 1
resolution = "360p"  # the film's size is not the point here: a quarter of 720p's stitch

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"{takes}

[[shot]]
id = "b"
continues = "a"
prompt = "the lamp comes on"
"""


def write(path: Path, takes: int | None = None, pick: int | None = None) -> Path:
    extra = "" if takes is None else f"\ntakes = {takes}"
    extra += "" if pick is None else f"\npick = {pick}"
    path.write_text(BOARD.format(takes=extra))
    return path


def lock_of(board: Path) -> dict:
    return json.loads(board.with_name("storyboard.lock").read_text())


def calls(fake) -> list[tuple[str, int, int]]:
    """(shot, candidate, batch) of every render the fake provider was asked for, in order."""
    return [(shot, job.candidate, job.batch) for shot, job in fake.calls]


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)


@pytest.fixture(scope="module")
def built_once(tmp_path_factory) -> tuple[Path, list[tuple[str, int, int]]]:
    """`a` with 3 takes (and `b` continuing it) built once for the module: (board, the renders it asked for)."""
    folder = tmp_path_factory.mktemp("takes") / "board"
    folder.mkdir()
    path = write(folder / "storyboard.toml", takes=3)
    with fake_registered() as fake:
        report = build(open_project(path))
        asked = calls(fake)
    assert report.film is not None
    return path, asked


@pytest.fixture
def board(built_once, fake_provider, tmp_path) -> Path:
    """A copy of the built board (cache included) that the test may change; the fake's call log is empty."""
    return copy_built(built_once[0], tmp_path)


def test_candidate_one_keeps_the_key_a_shot_had_before_takes(write_board, fake_provider):
    path = write(write_board(""))
    build(open_project(path))
    before = lock_of(path)["shots"]["a"]
    # the key is the job's JSON without candidate and batch: the very material a pre-takes build hashed
    assert set(before["components"]) == {"provider", "model", "prompt", "negative_prompt", "duration", "resolution",
                                         "aspect_ratio", "seed", "audio", "take", "first_frame", "last_frame",
                                         "references", "extends", "label"}
    assert before["key"] == cache_key(before["components"])

    fake_provider.reset()
    write(path, takes=2)
    project = open_project(path)
    found = list_candidates(project, "a")
    assert found[0].key == before["key"] and found[0].sha == before["clip"]
    report = build(project)
    assert calls(fake_provider) == [("a", 2, 0)]  # candidate 1 was a cache hit: nobody pays again
    assert report.shots["b"].outcome is Outcome.CACHED


def test_takes_make_one_cache_entry_and_one_clip_each(board, built_once):
    assert sorted(built_once[1]) == [("a", 1, 0), ("a", 2, 0), ("a", 3, 0), ("b", 1, 0)]
    entry = lock_of(board)["shots"]["a"]
    assert len(entry["candidates"]) == 3
    project = open_project(board)
    found = list_candidates(project, "a")
    assert [c.number for c in found] == [1, 2, 3] and [c.picked for c in found] == [True, False, False]
    assert set(entry["candidates"]) == {c.key for c in found} and len({c.key for c in found}) == 3
    assert all((project.cache.root / "actions" / f"{c.key}.json").is_file() for c in found)
    assert len({c.sha for c in found}) == 3 and all(c.path.is_file() and c.duration == 4.0 for c in found)
    assert entry["clip"] == found[0].sha  # the picked one stays where readers look for it


def test_raising_takes_generates_only_the_new_candidate_and_lowering_deletes_nothing(board, fake_provider):
    fake_provider.reset()
    write(board, takes=4)
    steps, _ = plan_project(open_project(board))
    step = {s.shot: s for s in steps}["a"]
    assert (step.status, step.missing) == ("to run", (4,))
    assert {s.shot: s.status for s in steps}["b"] == "cached"  # the picked clip is unchanged
    build(open_project(board))
    assert calls(fake_provider) == [("a", 4, 0)]
    assert len(lock_of(board)["shots"]["a"]["candidates"]) == 4

    fake_provider.reset()
    write(board, takes=2)
    report = build(open_project(board))
    assert fake_provider.calls == [] and report.count(Outcome.CACHED) == 2
    assert len(lock_of(board)["shots"]["a"]["candidates"]) == 4  # every paid take is still recorded


def test_pick_reruns_only_dependants_and_switching_back_is_a_cache_hit(board, fake_provider):
    film_1 = lock_of(board)["film"]["sha"]
    fake_provider.reset()
    write(board, takes=3, pick=2)
    project = open_project(board)
    report = build(project)
    assert calls(fake_provider) == [("b", 1, 0)]  # a's candidates are all cached; b starts on a new frame
    assert report.shots["a"].outcome is Outcome.CACHED and report.film.stitched
    lock = lock_of(board)
    picked = next(c for c in list_candidates(project, "a") if c.number == 2)
    assert lock["shots"]["a"]["clip"] == picked.sha and lock["film"]["sha"] != film_1
    # the film plays candidate 2: its first frame has candidate 2's colour, not candidate 1's (the fake's
    # clips are flat colours; the film is scaled, so colours are compared, not pixels)
    def colour(path: Path) -> np.ndarray:
        return first_frame(path).mean(axis=(0, 1))

    film = colour(board.parent / "build" / "film.mp4")
    first = list_candidates(project, "a")[0]
    assert np.abs(film - colour(picked.path)).max() < 4 < np.abs(film - colour(first.path)).max()

    fake_provider.reset()
    write(board, takes=3, pick=1)
    report = build(open_project(board))
    assert fake_provider.calls == [] and lock_of(board)["film"]["sha"] == film_1


def test_pick_above_takes_is_a_file_error_naming_the_shot_and_field(write_board, fake_provider):
    path = write(write_board(""), takes=2, pick=3)
    with pytest.raises(StoryboardFileError) as err:
        open_project(path)
    assert err.value.exit_code == 2
    assert "shot 'a'" in err.value.message and "'pick'" in err.value.message and "2 take(s)" in err.value.message


def test_gc_keeps_every_candidate_of_a_live_shot(board, fake_provider):
    project = open_project(board)
    found = list_candidates(project, "a")
    board.write_text(board.read_text().replace("the lamp comes on", "the lamp sweeps the sea"))
    build(open_project(board))  # b's old clip is now garbage, a's takes are not
    report = collect(project.cache, [board.with_name("storyboard.lock")])
    assert report.objects_removed > 0
    assert all(c.path.is_file() for c in found)
    assert all((project.cache.root / "actions" / f"{c.key}.json").is_file() for c in found)


def test_force_generates_a_new_batch_and_keeps_the_old(board, fake_provider):
    old = list_candidates(open_project(board), "a")
    fake_provider.reset()
    project = open_project(board)
    force_batches(project, ["a"])
    build(project)
    assert sorted(calls(fake_provider)) == [("a", 1, 1), ("a", 2, 1), ("a", 3, 1), ("b", 1, 0)]
    entry = lock_of(board)["shots"]["a"]
    assert entry["batch"] == 1 and len(entry["candidates"]) == 6
    assert {c.key for c in old} <= set(entry["candidates"]) and all(c.path.is_file() for c in old)
    new = list_candidates(open_project(board), "a")
    assert not {c.sha for c in new} & {c.sha for c in old}

    fake_provider.reset()
    report = build(open_project(board))  # the batch is in the lock: the next build is a no-op
    assert fake_provider.calls == [] and not report.film.stitched
    with pytest.raises(StoryboardError, match="did you mean 'a'"):
        force_batches(open_project(board), ["aa"])


def test_plan_shows_takes_and_pick_and_costs_each_missing_candidate(board, fake_provider):
    write(board, takes=4, pick=2)
    project = open_project(board)
    steps, _ = plan_project(project)
    pv = view(project, steps)
    rows = {r.shot: r for r in pv.rows}
    price = 0.5 * 4  # the fake's price of one 4 s candidate
    assert "(4 takes, pick 2; 1 to generate)" in rows["a"].reason
    assert (rows["a"].generate, rows["a"].cost) == (1, price)
    assert pv.totals.usd() == pytest.approx(price + price)  # a's 4th take, and b on candidate 2's last frame
    with pytest.raises(StoryboardError, match="exceeds --budget"):
        consent(pv, budget=price * 1.5, yes=False, terminal=False)

    write(board, takes=4, pick=1)
    fresh = board.parent.parent / "other" / "storyboard.toml"
    fresh.parent.mkdir()
    write(fresh, takes=4)
    project = open_project(fresh)
    pv = view(project, plan_project(project)[0])
    assert {r.shot: r.generate for r in pv.rows}["a"] == 4 and {r.shot: r.cost for r in pv.rows}["a"] == 4 * price


def test_the_takes_command_lists_the_candidates(board, fake_provider, capsys, monkeypatch):
    from tests.test_cli import run_main as run_cli

    def run_main(argv: list[str]) -> tuple[int, str, str]:
        return run_cli(argv, capsys, monkeypatch)

    code, out, _ = run_main(["takes", str(board), "a"])
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[1].startswith("*") and not lines[2].startswith("*")
    for c in list_candidates(open_project(board), "a"):
        assert c.key[:12] in out and c.created in out
    code, out, _ = run_main(["takes", str(board), "b", "--json"])
    (b,) = json.loads(out)
    shots, cache = lock_of(board)["shots"], open_project(board).cache
    # b's first frame against a's last (the clip before it in the film)
    assert code == 0 and b["picked"] and b["continuity"] == continuity(
        cache.object_path(shots["a"]["last"]), cache.object_path(shots["b"]["first"]))
    assert b["continuity_next"] is None  # the film's last clip
    everything = all_candidates(open_project(board))
    assert list(everything) == ["a", "b"] and everything["b"][0].continuity == b["continuity"]
    for c, record in zip(everything["a"], sorted(shots["a"]["candidates"].values(), key=lambda r: r["number"]),
                         strict=True):
        assert c.continuity is None and c.continuity_next == continuity(
            cache.object_path(record["last"]), cache.object_path(shots["b"]["first"]))
    code, _, err = run_main(["takes", str(board), "zz"])
    assert code == 2 and "no shot 'zz'" in err

    fake_provider.reset()
    code, out, _ = run_main(["build", str(board), "--force", "a", "--yes", "--quiet"])
    assert code == 0 and sorted(calls(fake_provider)) == [("a", 1, 1), ("a", 2, 1), ("a", 3, 1), ("b", 1, 0)]
    code, _, err = run_main(["build", str(board), "--force", "x", "--yes"])
    assert code == 2 and "--force: unknown shot 'x'" in err


def test_continuity_is_likeness_of_frames(tmp_path):
    from PIL import Image

    for name, colour in (("black", 0), ("white", 255), ("grey", 128)):
        Image.new("L", (64, 36), colour).save(tmp_path / f"{name}.png")
    assert continuity(tmp_path / "black.png", tmp_path / "black.png") == 1.0
    assert continuity(tmp_path / "black.png", tmp_path / "white.png") == 0.0
    assert 0.45 < continuity(tmp_path / "black.png", tmp_path / "grey.png") < 0.55


# ---- the animatic: candidates differ in their pixels -----------------------------------------


def test_the_animatic_renders_visibly_different_candidates(write_board):
    path = write_board("""
        [film]
        provider = "animatic"
        duration = 4
        audio = false

        [[shot]]
        id = "a"
        prompt = "a lighthouse at dusk"
        takes = 3
        """)
    project = open_project(path)
    report = build(project)
    assert report.count(Outcome.RENDERED) == 1 and report.film is not None
    found = list_candidates(open_project(path), "a")
    assert len({c.sha for c in found}) == 3
    frames = [first_frame(c.path) for c in found]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(frames[i] - frames[j]).mean() > 10, (i, j)  # palettes differ, not just noise


# ---- providers that return several videos a request ------------------------------------------


VERTEX_BOARD = """
[film]
provider = "vertex"
model = "veo-3.1-generate-001"
duration = 4
audio = false

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"
takes = 3
pick = 3

[providers.vertex]
poll_interval = 0.01
"""


def test_vertex_sends_one_request_with_sample_count_and_keeps_every_video(write_board, google_fake, monkeypatch):
    monkeypatch.setenv("STORYBOARD_VERTEX_BASE_URL", google_fake.url)
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", google_fake.token)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", google_fake.project)
    path = write_board(VERTEX_BOARD)
    report = build(open_project(path))
    assert report.count(Outcome.RENDERED) == 1, report.failed
    assert google_fake.count("submit") == 1
    assert google_fake.bodies("submit")[0]["parameters"]["sampleCount"] == 3
    found = list_candidates(open_project(path), "a")
    assert all(c.sha for c in found) and len({c.sha for c in found}) == 3
    assert [c.picked for c in found] == [False, False, True]
    assert all(c.cost == pytest.approx(0.2 * 4) for c in found)  # each video is priced (and was paid for)
    assert lock_of(path)["shots"]["a"]["clip"] == found[2].sha

    path.write_text(VERTEX_BOARD.replace("takes = 3", "takes = 4"))
    build(open_project(path))
    assert google_fake.count("submit") == 2 and google_fake.bodies("submit")[1]["parameters"]["sampleCount"] == 1


def test_azerion_asks_for_n_videos_in_one_request(write_board, azerion_fake, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AZERION_API_KEY", azerion_fake.api_key)
    monkeypatch.setenv("STORYBOARD_AZERION_BASE_URL", azerion_fake.url)
    path = write_board("""
        [film]
        provider = "azerion"
        duration = 4

        [[shot]]
        id = "a"
        prompt = "a lighthouse at dusk"
        takes = 2
        """)
    report = build(open_project(path))
    assert report.count(Outcome.RENDERED) == 1, report.failed
    assert azerion_fake.count("generate") == 1 and azerion_fake.bodies("generate")[0]["n"] == 2
    found = list_candidates(open_project(path), "a")
    assert all(c.sha for c in found) and len({c.sha for c in found}) == 2


def test_push_shares_every_candidate_with_the_team(board, fake_provider, capsys, monkeypatch, tmp_path):
    from tests.test_cli import run_main

    remote = tmp_path / "team-cache"
    remote.mkdir()
    code, out, err = run_main(["push", str(board), "--remote", str(remote)], capsys, monkeypatch)
    assert code == 0, err
    keys = {c.key for c in list_candidates(open_project(board), "a")}
    assert len(keys) == 3 and "push: 5 actions" in out  # a's three takes, b and the film
    pushed = {p.stem for p in remote.rglob("*.json")}
    assert keys <= pushed
