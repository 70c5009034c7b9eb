"""storyboard.lock is merged, never overwritten: two builds at once, a killed build, a hostile lock,
gc during a stitch; and an extension of a 30 fps clip is measured, not assumed at 24 fps."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from storyboard.build import build, open_project
from storyboard.cache import Cache
from storyboard.errors import LockHeldError
from storyboard.executor import Outcome
from storyboard.gc import collect
from storyboard.job import RenderResult
from storyboard.lockfile import LockFile, log_path, read_lock
from tests._cli import storyboard
from tests.fake_provider import FakeProvider

BOARD = """
[film]
provider = "fake"
duration = 4
seed = 2
resolution = "360p"  # the film's size is not the point here: a quarter of 720p's stitch

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"

[[shot]]
id = "b"
prompt = "a ship far out at sea"

[[shot]]
id = "c"
prompt = "gulls over the harbour"
"""


def lock_of(board: Path) -> dict:
    return json.loads(board.with_name("storyboard.lock").read_text())


def rendered(fake: type[FakeProvider]) -> list[str]:
    return sorted(shot for shot, _ in fake.calls)


# ---- two builds at once ---------------------------------------------------------------------------


def test_two_only_builds_that_read_the_lock_before_either_wrote_keep_both(write_board, fake_provider):
    board = write_board(BOARD)
    first, second = open_project(board), open_project(board)  # both see the empty lock
    build(first, only=["a"])
    build(second, only=["b"])
    assert sorted(lock_of(board)["shots"]) == ["a", "b"]
    assert not log_path(board.with_name("storyboard.lock")).exists(), "compacted at the end"


def test_two_only_builds_at_once_then_gc_then_a_full_build_pays_for_nothing_again(write_board, fake_provider):
    board = write_board(BOARD)
    projects = {shot: open_project(board) for shot in "abc"}
    start = threading.Barrier(len(projects))
    errors: list[BaseException] = []

    def run(shot: str) -> None:
        try:
            start.wait(timeout=30)
            build(projects[shot], only=[shot], jobs=1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(shot,)) for shot in projects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert rendered(fake_provider) == ["a", "b", "c"]
    assert sorted(lock_of(board)["shots"]) == ["a", "b", "c"]

    lock = board.with_name("storyboard.lock")
    collect(Cache(board.parent / ".storyboard"), [lock])
    fake_provider.calls.clear()
    report = build(open_project(board))
    assert fake_provider.calls == [], "gc kept every shot both builds paid for"
    assert report.count(Outcome.CACHED) == 3 and report.film is not None


def test_appends_from_many_threads_are_all_kept(tmp_path):
    path = tmp_path / "storyboard.lock"
    locks = [LockFile(path) for _ in range(4)]

    def record(n: int) -> None:
        for i in range(50):
            locks[n].record_shot(f"s{n}-{i}", {"key": f"{n}-{i}", "clip": "x" * 64})
            if i % 17 == 0:
                locks[n].compact()

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    locks[0].compact()
    shots = json.loads(path.read_text())["shots"]
    assert len(shots) == 200 and shots["s3-49"]["key"] == "3-49"


# ---- a killed build -----------------------------------------------------------------------------


def test_a_killed_build_loses_no_finished_shot(write_board, fake_provider, plugin_env):
    board = write_board(BOARD.replace("gulls over the harbour", "gulls over the harbour [hang]"))
    log = log_path(board.with_name("storyboard.lock"))
    proc = subprocess.Popen([sys.executable, "-m", "storyboard", "build", str(board), "--jobs", "1", "--yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=plugin_env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and log.read_bytes().count(b"\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "the build should hang on shot c"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not board.with_name("storyboard.lock").exists(), "killed before any compaction"
    assert sorted(read_lock(board.with_name("storyboard.lock")).shots) == ["a", "b"], "readers merge the log"

    board.write_text(board.read_text().replace(" [hang]", ""))
    report = build(open_project(board))
    assert rendered(fake_provider) == ["c"], "a and b were paid for once, by the killed build"
    assert report.count(Outcome.CACHED) == 2
    assert sorted(lock_of(board)["shots"]) == ["a", "b", "c"] and not log.exists()


def test_a_torn_last_line_is_skipped_and_the_next_append_is_kept(tmp_path):
    lock = tmp_path / "storyboard.lock"
    good = json.dumps({"shot": "a", "entry": {"key": "ka"}})
    log_path(lock).write_text(good + "\n" + '{"shot": "b", "entry": {"ke')
    assert read_lock(lock).shots == {"a": {"key": "ka"}}
    LockFile(lock).record_shot("c", {"key": "kc"})
    assert read_lock(lock).shots == {"a": {"key": "ka"}, "c": {"key": "kc"}}


# ---- a hostile lock -------------------------------------------------------------------------------


def hostile_lock(folder: Path, kind: str, victim: Path) -> Path:
    lock = folder / "storyboard.lock"
    if kind == "dev-zero":
        lock.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(lock)
    elif kind == "symlink-to-victim":
        lock.symlink_to(victim)
    elif kind == "log-fifo":
        os.mkfifo(log_path(lock))
    elif kind == "log-dev-zero":
        log_path(lock).symlink_to("/dev/zero")
    return lock


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "symlink-to-victim", "log-fifo", "log-dev-zero"])
def test_a_lock_that_is_not_a_regular_file_neither_hangs_nor_is_written_through(write_board, plugin_env,
                                                                                  tmp_path, kind):
    board = write_board(BOARD)
    victim = tmp_path / "victim.json"
    victim.write_text('{"shots": {}}\n')
    before = victim.read_bytes()
    hostile_lock(board.parent, kind, victim)
    name = "storyboard.lock.log" if kind.startswith("log") else "storyboard.lock"

    planned = storyboard("plan", str(board), env=plugin_env, timeout=60)
    assert planned.returncode == 0, planned.stderr
    assert planned.stderr.count(f"{name} is not a regular file; ignoring it") == 1, planned.stderr

    built = storyboard("build", str(board), "--only", "a", env=plugin_env, yes=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert victim.read_bytes() == before
    lock = board.with_name("storyboard.lock")
    assert lock.is_file() and not lock.is_symlink() and sorted(lock_of(board)["shots"]) == ["a"]


def test_a_huge_lock_is_ignored_without_reading_it_all(tmp_path, monkeypatch):
    import storyboard.lockfile as lockfile

    monkeypatch.setattr(lockfile, "MAX_BYTES", 1000)
    lock = tmp_path / "storyboard.lock"
    lock.write_text(json.dumps({"shots": {"a": {"key": "k" * 2000}}}))
    warnings: list[str] = []
    assert LockFile(lock, warn=warnings.append).shots == {}
    assert warnings == ["storyboard.lock is larger than 0 MiB; ignoring it"]


# ---- gc and the stitch ----------------------------------------------------------------------------


def test_gc_waits_out_no_stitch_it_refuses_while_one_runs(write_board, fake_provider, monkeypatch):
    import storyboard.edit.stitch as stitch_module

    board = write_board(BOARD)
    build(open_project(board), only=["a", "b", "c"])
    lock = board.with_name("storyboard.lock")
    stitching, release = threading.Event(), threading.Event()
    real = stitch_module.stitch

    def slow_stitch(*args, **kwargs):
        stitching.set()
        assert release.wait(timeout=60)
        return real(*args, **kwargs)

    monkeypatch.setattr(stitch_module, "stitch", slow_stitch)
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(build(open_project(board))))
    thread.start()
    try:
        assert stitching.wait(timeout=60)
        with pytest.raises(LockHeldError, match="rendering or stitching"):
            collect(Cache(board.parent / ".storyboard"), [lock])
    finally:
        release.set()
        thread.join(timeout=120)
    [report] = outcome
    assert report.film.stitched and report.film.path.is_file()
    collect(Cache(board.parent / ".storyboard"), [lock])  # after the stitch, gc runs
    assert hashlib.sha256(report.film.path.read_bytes()).hexdigest() == report.film.sha


def test_adopt_survives_its_shard_folder_removed_by_a_concurrent_gc(tmp_path, monkeypatch):
    cache = Cache(tmp_path / "cache")
    produced = cache.tmp_path(".bin")
    produced.write_bytes(b"a clip")
    real = os.replace
    removed: list[Path] = []

    def replace_after_gc(src, dst):
        if not removed:
            removed.append(Path(dst).parent)
            os.rmdir(Path(dst).parent)  # gc's _rmdir of an empty shard, between mkdir and rename
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_gc)
    sha = cache.adopt(produced)
    assert removed and cache.object_path(sha).read_bytes() == b"a clip"


def test_gc_dry_run_lists_what_it_would_remove(write_board, fake_provider):
    board = write_board(BOARD)
    build(open_project(board))
    old = lock_of(board)
    board.write_text(board.read_text().replace("a ship far out", "a ship near the rocks"))
    build(open_project(board))
    cache = Cache(board.parent / ".storyboard")
    dry = collect(cache, [board.with_name("storyboard.lock")], dry_run=True)
    text = dry.summary()
    for k in ("clip", "first", "last"):
        sha = old["shots"]["b"][k]
        assert f"  object {sha} (" in text and cache.object_path(sha).exists()
    assert f"  object {old['film']['sha']} (" in text
    assert text.splitlines()[-1].startswith(f"{cache.root}: would remove {dry.objects_removed} objects")
    assert len([line for line in text.splitlines() if line.startswith("  object ")]) == dry.objects_removed


# ---- the executor's check of an extension's length ------------------------------------------------


class Fake30Provider(FakeProvider):
    """Renders 30 fps clips; an extension is the source's measured length plus 7 s, as Veo's."""

    name = "fake30"

    def render(self, job, dest, ctx):
        from storyboard.job import EXTENSION_SECONDS
        from storyboard.media import probe, run_ffmpeg

        with self._mutex:
            type(self).calls.append((ctx.shot_id, job))
        seconds = float(job.duration)
        if job.extends:
            seconds = probe(ctx.input_path(job.extends)).duration + EXTENSION_SECONDS
        run_ffmpeg(["-f", "lavfi", "-i", f"color=c=0x336699:s=64x36:r=30:d={seconds}", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-an", "-f", "mp4", "-y", str(dest)])
        return RenderResult(cost=self.price(job), operation=f"op-{ctx.shot_id}")


def test_extending_a_30_fps_clip_is_accepted(write_board, fake_provider, monkeypatch):
    import storyboard.providers as providers

    monkeypatch.setitem(providers.BUILTIN, "fake30", "tests.test_lock_merge:Fake30Provider")
    board = write_board("""
        [film]
        provider = "fake30"
        duration = 8
        audio = false

        [[shot]]
        id = "sea"
        prompt = "a calm sea"

        [[shot]]
        id = "storm"
        extends = "sea"
        prompt = "a storm rolls in"
        """)
    report = build(open_project(board), only=["storm"])
    assert not report.failed, [r.error for r in report.failed]
    assert report.shots["storm"].outcome is Outcome.RENDERED
    entry = lock_of(board)["shots"]["storm"]
    assert entry["clip"] != lock_of(board)["shots"]["sea"]["clip"]
