"""Builds that die, collide or run out of disk: kill -9 at any moment, two builds at once, bad ffmpeg, full disk.

Every test runs real `storyboard build` processes against the fake Gemini API on loopback and
checks the promises: nothing is paid for twice, nothing partial is ever a result, and the next
build finishes the job.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.google_server import FakeGoogle
from tests.test_gemini_build import KEY, assert_objects_intact, cache_objects, gemini_env, journals, lock_of, storyboard

FOUR = """
[film]
output = "out/film.mp4"
provider = "gemini"
duration = 4

[providers.gemini]
allow_retired = true  # the fake still serves the shut-down preview models
poll_interval = 0.01

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"

[[shot]]
id = "b"
continues = "a"
prompt = "the keeper climbs the stairs"

[[shot]]
id = "c"
continues = "b"
prompt = "the lamp room glows"

[[shot]]
id = "d"
prompt = "a ship far out at sea"
"""
TWO = FOUR[: FOUR.index('[[shot]]\nid = "c"')]
WAIT = 60.0


@pytest.fixture
def fake(google_fake: FakeGoogle):
    google_fake.api_key = KEY
    yield google_fake
    google_fake.release()
    google_fake.api_key = "fake-gemini-key"


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    board = folder / "storyboard.toml"
    board.write_text(text)
    return board


class Build:
    """A `storyboard build` process whose stdout is read line by line, with a deadline on every wait."""

    def __init__(self, board: Path, env: dict[str, str], *args: str) -> None:
        self.stderr_path = board.parent / f".stderr-{time.monotonic_ns()}"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "storyboard", "build", str(board), "--yes", *args],
                                         stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True,
                                         env=env, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def until(self, wanted: Callable[[str], bool]) -> str | None:
        """Read lines until one is `wanted` (returned) or the output ends (None)."""
        while True:
            line = self._queue.get(timeout=WAIT)
            if line is None:
                self._queue.put(None)
                return None
            self.lines.append(line)
            if wanted(line):
                return line

    def kill(self) -> None:
        """SIGKILL the build, then any ffmpeg it left running (its session), and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the leader is not reaped yet: its group id is ours
        self.proc.wait(timeout=WAIT)

    def finish(self) -> int:
        """Read to the end; the exit code."""
        self.until(lambda line: False)
        return self.proc.wait(timeout=WAIT)

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll `condition` (a file or the fake's state) until it holds; a bounded loop, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def recorded_operations(cache: Path) -> set[str]:
    """Operations the cache knows: journaled (in flight) or committed with an action."""
    names = set()
    for entry in [*journals(cache), *(cache / "actions").glob("*.json")] if cache.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            if name := json.loads(entry.read_text()).get("operation"):
                names.add(name)
    return names


def kill_at_a_quiet_moment(build: Build, fake: FakeGoogle, cache: Path) -> None:
    """SIGKILL `build` once every submission the fake accepted is journaled.

    Gemini takes no idempotency key, so a kill between Google accepting a job and the journal
    recording it would orphan (and bill) that job; no client can close that window. The fake
    holds new submissions while the build catches up (answers sent, operations journaled), and
    drops those of the dead build.
    """
    fake.hold("submit")
    try:
        wait_until(lambda: build.proc.poll() is not None or (
            fake.in_flight("submit") == 0 and fake.operation_names() <= recorded_operations(cache)),
            "every accepted submission to be journaled")
        build.kill()
    finally:
        fake.release()


def assert_nothing_paid_twice(fake: FakeGoogle, board: Path) -> None:
    keys = {entry["key"] for entry in lock_of(board)["shots"].values()}
    assert len(keys) == len(lock_of(board)["shots"])
    assert sum(fake.submissions.values()) == len(keys), fake.submissions
    assert set(fake.submissions.values()) == {1}


# ---- kill -9 --------------------------------------------------------------------------------------


def test_kill_9_while_rendering_resumes_without_paying_again(fake, tmp_path):
    fake.pending_polls = 10**9
    board = write(tmp_path, TWO)
    cache = tmp_path / ".storyboard"
    env = gemini_env(fake)
    first = Build(board, env)
    assert first.until(lambda line: line == "a: rendering")
    first.kill()
    assert first.proc.returncode == -signal.SIGKILL
    [journal] = journals(cache)
    entry = json.loads(journal.read_text())
    assert entry["operation"] in fake.operation_names() and entry["provider"] == "gemini"
    assert KEY not in journal.read_text()
    assert fake.submissions == {"a lighthouse at dusk": 1}

    fake.pending_polls = 2
    fake.finish_pending()
    second = Build(board, env)
    assert second.finish() == 0, second.stderr
    assert "a: submitted" not in second.lines and "a: rendered" in second.stdout  # resumed, not resubmitted
    assert f"film: {board.parent / 'out' / 'film.mp4'} (8.00 s, stitched)" in second.lines
    assert fake.submissions == {"a lighthouse at dusk": 1, "the keeper climbs the stairs": 1}
    assert_objects_intact(cache)
    assert not journals(cache)
    assert KEY not in first.stdout + first.stderr + second.stdout + second.stderr


def test_a_journaled_operation_that_vanished_is_submitted_again(fake, tmp_path):
    fake.pending_polls = 10**9
    board = write(tmp_path, TWO)
    env = gemini_env(fake)
    first = Build(board, env, "--only", "a")
    assert first.until(lambda line: line == "a: rendering")
    first.kill()
    fake.forget_operations()
    fake.pending_polls = 2
    second = Build(board, env, "--only", "a")
    assert second.finish() == 0, second.stderr
    assert "journaled gemini operation" in second.stderr and "is gone" in second.stderr
    assert "submitting again" in second.stderr
    assert fake.submissions == {"a lighthouse at dusk": 2}
    assert not journals(tmp_path / ".storyboard")


@pytest.mark.parametrize("kills", [3, pytest.param(20, marks=pytest.mark.slow)])
def test_kill_9_at_random_moments_never_pays_twice_or_corrupts(fake, tmp_path, kills):
    rng = random.Random(20240607 + kills)
    env = gemini_env(fake)
    for run in range(kills):
        fake.reset()
        board = write(tmp_path / f"run{run}", FOUR)
        cache = board.parent / ".storyboard"
        k = rng.randint(1, 24)  # a full build prints about 25 lines
        victim = Build(board, env)
        if victim.until(lambda line: len(victim.lines) >= k) is not None:
            kill_at_a_quiet_moment(victim, fake, cache)
        else:
            victim.proc.wait(timeout=WAIT)
        assert_objects_intact(cache)

        rerun = Build(board, env)
        assert rerun.finish() == 0, f"run {run}, killed after line {k}: {rerun.stderr}"
        assert f"film: {board.parent / 'out' / 'film.mp4'} (16.00 s" in rerun.stdout
        assert_nothing_paid_twice(fake, board)
        assert_objects_intact(cache)
        for action in (cache / "actions").glob("*.json"):
            assert set(json.loads(action.read_text())["outputs"].values()) <= set(cache_objects(cache))


# ---- two builds, one cache ------------------------------------------------------------------------


def test_a_second_build_waits_for_the_first_and_reuses_its_shot(fake, tmp_path):
    fake.pending_polls = 10**9
    board = write(tmp_path, TWO)
    env = gemini_env(fake)
    first = Build(board, env, "--only", "b")  # the shots, not the film: stitching is tested elsewhere
    assert first.until(lambda line: line == "a: submitted")
    second = Build(board, env, "--only", "b")
    assert second.until(lambda line: line.startswith("a: waiting: "))
    assert second.lines[-1].startswith(f"a: waiting: held by pid {first.pid} on ")

    fake.pending_polls = 2
    fake.finish_pending()
    assert first.finish() == 0, first.stderr
    assert second.finish() == 0, second.stderr
    assert "a: cached" in second.lines
    assert fake.submissions == {"a lighthouse at dusk": 1, "the keeper climbs the stairs": 1}
    assert_objects_intact(tmp_path / ".storyboard")


def test_the_lock_of_a_killed_build_is_taken_over(fake, tmp_path):
    fake.pending_polls = 10**9
    board = write(tmp_path, TWO)
    env = gemini_env(fake)
    holder = Build(board, env)
    assert holder.until(lambda line: line == "a: rendering")
    holder.kill()
    [lock] = (tmp_path / ".storyboard" / "locks").iterdir()
    assert lock.read_text().startswith(f"pid {holder.pid} on ")  # it died holding the lock

    fake.pending_polls = 2
    fake.finish_pending()
    after = Build(board, env, "--only", "b")
    assert after.finish() == 0, after.stderr
    assert not [line for line in after.lines if "waiting" in line]
    assert fake.submissions == {"a lighthouse at dusk": 1, "the keeper climbs the stairs": 1}


# ---- ffmpeg and the disk --------------------------------------------------------------------------


@pytest.mark.parametrize("ffmpeg", ["missing", "failing"])
def test_a_broken_ffmpeg_fails_clearly_and_leaves_no_partial_object(fake, tmp_path, ffmpeg):
    board = write(tmp_path / "board", TWO)
    cache = board.parent / ".storyboard"
    if ffmpeg == "missing":
        binary, says = "/nonexistent", "STORYBOARD_FFMPEG='/nonexistent' is not an executable ffmpeg"
    else:
        import imageio_ffmpeg

        script = tmp_path / "ffmpeg"
        script.write_text(f'#!/bin/sh\nif [ "$1" = "-version" ]; then exec {imageio_ffmpeg.get_ffmpeg_exe()} '
                          '-version; fi\nfor last; do :; done\nprintf garbage > "$last"\n'
                          'echo "ffmpeg: out of luck" >&2\nexit 1\n')
        script.chmod(0o755)
        binary, says = str(script), "ffmpeg failed with exit code 1:\nffmpeg: out of luck"
    broken = storyboard("build", str(board), env=gemini_env(fake, STORYBOARD_FFMPEG=binary))
    assert broken.returncode == 1
    assert "storyboard: error: stitch: " in broken.stderr and says in broken.stderr
    assert "Traceback" not in broken.stderr
    assert_objects_intact(cache)
    assert all(path.read_bytes() != b"garbage" for path in cache_objects(cache).values())
    assert not (board.parent / "out" / "film.mp4").exists()

    kept = storyboard("build", str(board), "--only", "b", env=gemini_env(fake))
    assert kept.returncode == 0, kept.stderr
    assert "summary: 2 cached" in kept.stdout  # the paid shots were kept
    assert_nothing_paid_twice(fake, board)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `where` (root only); skips the test when mounting is not permitted."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


def test_a_full_disk_fails_with_a_cache_error_and_the_next_build_resumes(fake, tmp_path):
    board = write(tmp_path / "board", TWO)
    with tmpfs(tmp_path / "disk", "256k") as disk:  # smaller than one clip
        cache = disk / "cache"
        env = gemini_env(fake)
        full = storyboard("build", str(board), "--cache-dir", str(cache), env=env)
        assert full.returncode == 1
        assert (f"failed: a: cannot write to the cache at {cache}: the disk is full; free space or point "
                "--cache-dir / STORYBOARD_CACHE at a writable folder") in full.stderr
        assert "Traceback" not in full.stderr
        assert not cache_objects(cache)
        assert len(journals(cache)) == 1  # the paid job is remembered

        remount(disk, "size=64m")
        freed = storyboard("build", str(board), "--only", "b", "--cache-dir", str(cache), env=env)
        assert freed.returncode == 0, freed.stderr
        assert_nothing_paid_twice(fake, board)
        assert_objects_intact(cache)


def test_a_read_only_cache_fails_with_a_cache_error(fake, tmp_path):
    board = write(tmp_path / "board", TWO)
    env = gemini_env(fake)
    if os.geteuid() == 0:  # root writes through chmod: make the filesystem itself read-only
        context = tmpfs(tmp_path / "disk", "64m")
        says = "the folder is read-only"
    else:
        context = contextlib.nullcontext(tmp_path / "disk")
        says = "permission denied"
    with context as disk:
        cache = disk / "cache"
        partial = storyboard("build", str(board), "--only", "a", "--cache-dir", str(cache), env=env)
        assert partial.returncode == 0, partial.stderr
        before = set(cache_objects(cache))
        if os.geteuid() == 0:
            remount(disk, "ro")
        else:
            for folder in [cache, *(p for p in cache.rglob("*") if p.is_dir())]:
                folder.chmod(0o555)
        try:
            refused = storyboard("build", str(board), "--cache-dir", str(cache), env=env)
        finally:
            if os.geteuid() == 0:
                remount(disk, "rw")
            else:
                for folder in [cache, *(p for p in cache.rglob("*") if p.is_dir())]:
                    folder.chmod(0o755)
        assert refused.returncode == 1
        assert f"failed: b: cannot write to the cache at {cache}: {says}" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert set(cache_objects(cache)) == before
        assert_objects_intact(cache)
        assert fake.submissions == {"a lighthouse at dusk": 1}
