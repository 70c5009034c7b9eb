"""`gc.collect`: what a lock pins stays, the rest goes, and a build afterwards has nothing to do."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from storyboard.build import build, open_project, plan_project
from storyboard.cache import Cache
from storyboard.errors import LockHeldError, StoryboardError, StoryboardFileError
from storyboard.executor import Outcome
from storyboard.gc import collect, locate, pins

BOARD = """
[film]
provider = "fake"
resolution = "360p"  # the film's size is not the point here: a quarter of 720p's stitch
duration = 4
seed = 1

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"

[[shot]]
id = "b"
continues = "a"
prompt = "the lamp comes on"
"""


def objects(cache: Cache) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (cache.root / "objects").glob("*/*")}


def test_gc_removes_the_unpinned_clip_and_the_next_build_is_a_no_op(write_board, fake_provider):
    board = write_board(BOARD)
    build(open_project(board))
    lock = board.with_name("storyboard.lock")
    old = json.loads(lock.read_text())
    board.write_text(board.read_text().replace("the lamp comes on", "the lamp sweeps the sea"))
    project = open_project(board)
    build(project)
    new = json.loads(lock.read_text())
    assert new["shots"]["b"]["clip"] != old["shots"]["b"]["clip"]
    cache = project.cache
    before = objects(cache)

    dry = collect(cache, [lock], dry_run=True)
    assert objects(cache) == before and dry.objects_removed > 0
    report = collect(cache, [lock])
    assert (report.objects_removed, report.bytes_freed, report.actions_removed) == \
        (dry.objects_removed, dry.bytes_freed, dry.actions_removed)

    after = objects(cache)
    unpinned = {old["shots"]["b"][k] for k in ("clip", "first", "last")} | {old["film"]["sha"]}
    assert not unpinned & set(after)
    # every pinned object that was there is kept (frame components in keys are pixel digests, not objects)
    assert {sha for sha in pins(lock) if sha in before} <= set(after)
    assert report.bytes_freed == sum(size for sha, size in before.items() if sha not in after)
    assert not (cache.root / "actions" / f"{old['shots']['b']['key']}.json").exists()
    assert (cache.root / "actions" / f"{new['shots']['b']['key']}.json").exists()
    assert (cache.root / "actions" / f"{new['film']['key']}.json").exists()

    fake_provider.reset()
    project = open_project(board)
    steps, _ = plan_project(project)
    assert [(s.shot, s.status) for s in steps] == [("a", "cached"), ("b", "cached")]
    result = build(project)
    assert fake_provider.calls == [] and result.count(Outcome.RENDERED) == 0
    assert result.film is not None and not result.film.stitched
    assert collect(cache, [lock]).objects_removed == 0


# ---- the safety rules, on a hand-made cache ---------------------------------------------


@pytest.fixture
def store(tmp_path: Path):
    """A cache with two objects and a lock pinning one of them; every file dated T0."""
    cache = Cache(tmp_path / ".storyboard")
    shas = []
    for text in ("pinned", "loose"):
        source = tmp_path / f"{text}.bin"
        source.write_text(text * 100)
        shas.append(cache.adopt(source))
    board = tmp_path / "storyboard.toml"
    board.write_text("")
    lock = tmp_path / "storyboard.lock"
    lock.write_text(json.dumps({"version": 1, "shots": {"a": {"clip": shas[0]}}, "film": {}}))
    for sha in shas:
        os.utime(cache.object_path(sha), (T0, T0))
    os.utime(lock, (T0 + 100, T0 + 100))
    return cache, lock, shas


T0 = 1_700_000_000.0


def test_objects_newer_than_the_lock_are_kept(store):
    cache, lock, (pinned, loose) = store
    os.utime(cache.object_path(loose), (T0 + 200, T0 + 200))
    report = collect(cache, [lock], now=T0 + 300)
    assert report.objects_removed == 0 and report.kept_recent == 1
    os.utime(cache.object_path(loose), (T0, T0))
    report = collect(cache, [lock], now=T0 + 300)
    assert report.objects_removed == 1 and set(objects(cache)) == {pinned}


def test_memos_of_kept_clips_stay_and_stitch_pieces_go(store, tmp_path):
    cache, lock, (pinned, _) = store
    for name, text in ((f"frame:{pinned}:1.500000", "frame"), ("conform-" + "c" * 64 + ".whole.mov", "piece")):
        produced = tmp_path / "produced"
        produced.write_text(text)
        cache.memo_put(name, produced)
    for path in [*(cache.root / "memo").glob("*.json"), *(cache.root / "objects").glob("*/*")]:
        os.utime(path, (T0, T0))
    report = collect(cache, [lock], now=T0 + 300)
    assert report.memos_removed == 1 and report.objects_removed == 2
    assert cache.memo_get(f"frame:{pinned}:1.500000") is not None
    assert cache.memo_get("conform-" + "c" * 64 + ".whole.mov") is None


def test_only_stale_temp_files_go(store):
    cache, lock, _ = store
    (cache.root / "tmp").mkdir()
    stale, fresh = cache.root / "tmp" / "stale.mp4", cache.root / "tmp" / "fresh.mp4"
    for path, when in ((stale, T0), (fresh, T0 + 3000)):
        path.write_bytes(b"partial")
        os.utime(path, (when, when))
    assert collect(cache, [lock], now=T0 + 3700).tmp_removed == 1
    assert fresh.exists() and not stale.exists()


def test_gc_refuses_while_a_build_renders(store):
    cache, lock, _ = store
    with cache.key_lock("k" * 64):
        with pytest.raises(LockHeldError, match="a build is rendering"):
            collect(cache, [lock])
        assert collect(cache, [lock], dry_run=True).objects_removed == 1
    assert collect(cache, [lock]).objects_removed == 1


def test_an_unreadable_lock_stops_gc_before_anything_goes(store):
    cache, lock, _ = store
    lock.write_text("{ not json")
    with pytest.raises(StoryboardError, match="not a readable storyboard.lock") as caught:
        collect(cache, [lock])
    assert caught.value.exit_code == 2 and len(objects(cache)) == 2


def test_locate_groups_locks_by_cache_and_needs_each_lock(tmp_path):
    boards = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        boards.append(tmp_path / name / "storyboard.toml")
        boards[-1].write_text("")
        boards[-1].with_name("storyboard.lock").write_text("{}")
    assert locate(boards) == {b.parent.resolve() / ".storyboard": [b.with_name("storyboard.lock")] for b in boards}
    shared = tmp_path / "shared"
    assert locate(boards, shared) == {shared.resolve(): [b.with_name("storyboard.lock") for b in boards]}
    boards[1].with_name("storyboard.lock").unlink()
    with pytest.raises(StoryboardError, match="no storyboard.lock beside it"):
        locate(boards)
    with pytest.raises(StoryboardFileError, match="no such file"):
        locate([tmp_path / "missing.toml"])
