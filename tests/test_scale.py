"""Scale: the executor's schedule, last-GOP frame extraction, large plans, planning once."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from storyboard import media
from storyboard.scheduling import Schedule


class _Shot:
    def __init__(self, ups: list[str]) -> None:
        self._ups = ups

    def upstream(self) -> list[str]:
        return self._ups


class _Board:
    def __init__(self, deps: dict[str, list[str]]) -> None:
        self.shots = {s: _Shot(ups) for s, ups in deps.items()}


def _drain(schedule: Schedule) -> list[str]:
    out = []
    while (shot := schedule.next_ready()) is not None:
        out.append(shot)
    return out


def test_schedule_releases_a_shot_once_all_its_upstream_finished() -> None:
    deps = {"a": [], "b": [], "c": ["a", "b"], "d": ["c", "c"], "e": []}
    schedule = Schedule(_Board(deps), list(deps), {})
    assert _drain(schedule) == ["a", "b", "e"]
    schedule.finished("a")
    assert _drain(schedule) == []
    schedule.finished("b")
    assert _drain(schedule) == ["c"]
    schedule.finished("c")  # d names c twice: one missing input, released once
    assert _drain(schedule) == ["d"]
    assert schedule.left() == []


def test_schedule_counts_outputs_known_before_the_run() -> None:
    deps = {"a": [], "b": ["a"], "c": ["b"]}
    schedule = Schedule(_Board(deps), ["b", "c"], {"a": {}})
    assert _drain(schedule) == ["b"]


def test_schedule_drops_every_descendant_of_a_failure_once_in_run_order() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"], "x": [], "y": ["x", "d"]}
    schedule = Schedule(_Board(deps), list(deps), {})
    assert _drain(schedule) == ["a", "x"]
    schedule.finished("a")
    assert _drain(schedule) == ["b", "c"]
    schedule.finished("b")
    assert schedule.drop_descendants("c") == ["d", "e", "y"]
    assert schedule.drop_descendants("c") == []  # already dropped: nothing walked twice
    schedule.finished("x")
    assert _drain(schedule) == [] and schedule.left() == []


def test_schedule_of_a_long_chain_touches_each_edge_once() -> None:
    """20,000 shots in chains: the counters make this instant; rescanning would take minutes."""
    n = 20_000
    deps = {f"s{i}": [f"s{i - 1}"] if i % 100 else [] for i in range(n)}
    board = _Board(deps)
    calls = 0
    for shot in board.shots.values():
        original = shot.upstream

        def counted(original: Any = original) -> list[str]:
            nonlocal calls
            calls += 1
            return original()

        shot.upstream = counted  # type: ignore[method-assign]
    schedule = Schedule(board, list(deps), {})
    started = []
    while (shot := schedule.next_ready()) is not None:
        started.append(shot)
        schedule.finished(shot)
    assert calls == n
    assert started == list(deps)  # each finishes at once: the earliest ready shot in run order goes next


# ---- last frame: only the last GOP is decoded ------------------------------------------------


def _ffmpeg(*args: str) -> None:
    media.run_ffmpeg(list(args))


@pytest.fixture(scope="module")
def bframes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of moving picture, a keyframe every 24 frames, 3 B-frames, audio longer than video."""
    path = tmp_path_factory.mktemp("clips") / "bframes.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=96x64:r=24:d=6", "-f", "lavfi", "-i", "sine=f=440:r=48000:d=7",
            "-c:v", "libx264", "-preset", "veryfast", "-g", "24", "-keyint_min", "24", "-bf", "3",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mp4", str(path))
    return path


def _all_frames(path: Path, index: int = 0) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[index])]


def _last_keyframe_seconds(path: Path, index: int = 0) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[index]
        times = [float(p.pts * stream.time_base) for p in container.demux(stream) if p.is_keyframe and p.pts is not None]
    return max(times)


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _spy_seeks(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    seeks: list[float] = []
    original = media._scan

    def scan(container: Any, video: Any, seek_to: float, target: float | None) -> Any:
        seeks.append(seek_to)
        return original(container, video, seek_to, target)

    monkeypatch.setattr(media, "_scan", scan)
    return seeks


def test_last_frame_of_a_b_frame_clip_decodes_only_the_last_gop(
        bframes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked = _all_frames(bframes)
    assert len(walked) == 144
    with av.open(str(bframes)) as container:  # the clip really reorders frames
        packets = [p for p in container.demux(container.streams.video[0]) if p.pts is not None]
        assert any(p.pts != p.dts for p in packets)
    seeks = _spy_seeks(monkeypatch)
    media.extract_frame(bframes, "last", tmp_path / "last.png")
    assert np.array_equal(_png(tmp_path / "last.png"), walked[-1])
    assert not np.array_equal(walked[-1], walked[-2])
    # one seek, past the last keyframe (5 s): the demuxer starts there, not a GOP earlier
    assert len(seeks) == 1 and seeks[0] >= _last_keyframe_seconds(bframes) == pytest.approx(5.0)
    media.extract_first_last(bframes, tmp_path / "a.png", tmp_path / "b.png")
    assert np.array_equal(_png(tmp_path / "a.png"), walked[0])
    assert np.array_equal(_png(tmp_path / "b.png"), walked[-1])


def test_last_frame_of_the_animatic_clip_is_its_clean_plates_last(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from storyboard.job import RenderContext, RenderJob
    from storyboard.providers.animatic import AnimaticProvider

    class Journal:
        def read(self) -> None:
            return None

        def write(self, entry: dict[str, Any]) -> None:
            pass

        def clear(self) -> None:
            pass

    clip = tmp_path / "animatic.mp4"
    job = RenderJob(provider="animatic", model="animatic-veo-3.1", prompt="a fox runs", duration=4, seed=3,
                    label="s1")
    AnimaticProvider().render(job, clip, RenderContext(shot_id="s1", inputs={}, journal=Journal()))
    plate = media.clean_plate_index(clip)
    assert plate is not None and plate != 0
    walked = _all_frames(clip, plate)
    assert len(walked) == 96
    seeks = _spy_seeks(monkeypatch)
    media.extract_first_last(clip, tmp_path / "first.png", tmp_path / "last.png")
    assert np.array_equal(_png(tmp_path / "last.png"), walked[-1])
    assert np.array_equal(_png(tmp_path / "first.png"), walked[0])
    assert len(seeks) == 1 and seeks[0] >= _last_keyframe_seconds(clip, plate)
    media.extract_frame(clip, 2.5, tmp_path / "mid.png")  # mid-clip the overlays show: the plate has none
    assert np.array_equal(_png(tmp_path / "mid.png"), walked[60])
    assert not np.array_equal(walked[60], _all_frames(clip, 0)[60])


# ---- storyboard plan on a large board ---------------------------------------------------------


def _view(rows: int) -> Any:
    from storyboard.estimate import Totals
    from storyboard.plan_view import PlanView, Row

    made = [Row(f"s{i:04d}", "cached" if i % 7 else "to run", "up to date" if i % 7 else "new shot", "fake",
                "fake-1", 4, None if i % 7 else 2.0, "USD", "k") for i in range(rows)]
    return PlanView(made, Totals(), 0.0, [])


def _printed(pv: Any, all_rows: bool = False) -> str:
    from rich.console import Console

    from storyboard.plan_view import render_table

    out = io.StringIO()
    render_table(pv, Console(file=out, width=200, highlight=False), all_rows=all_rows)
    return out.getvalue()


def test_a_large_plan_prints_counts_then_the_shots_that_run_first() -> None:
    text = _printed(_view(1000))
    lines = text.splitlines()
    assert lines[0] == "1000 shots: 143 to run, 857 cached"
    assert lines[1].split() == ["shot", "status", "reason", "provider", "/", "model", "dur", "est.", "cost"]
    assert lines[2].split()[:3] == ["s0000", "to", "run"] and lines[3].startswith("s0007 ")
    assert sum(1 for line in lines if line.startswith("s0")) == 50
    assert "950 more row(s)" in text and "--all" in text
    assert "━" not in text and "\x1b" not in text  # plain text: no rich table, no styles


def test_plan_all_prints_every_row_and_a_small_plan_keeps_the_rich_table() -> None:
    text = _printed(_view(1000), all_rows=True)
    assert sum(1 for line in text.splitlines() if line.startswith("s0")) == 1000
    assert "more row(s)" not in text
    small = _printed(_view(200))
    assert "shots:" not in small.splitlines()[0]
    assert sum(1 for line in small.splitlines() if line.startswith("s0")) == 200


def test_cli_plan_all_on_a_large_board(write_board: Any, fake_provider: Any) -> None:
    from typer.testing import CliRunner

    from storyboard.cli import app

    body = "".join(f'[[shot]]\nid = "s{i:03d}"\nprompt = "scene {i}"\n' for i in range(201))
    board = write_board('[film]\nprovider = "fake"\nduration = 4\n\n' + body)
    runner = CliRunner()
    short = runner.invoke(app, ["plan", str(board)])
    assert short.exit_code == 0, short.output
    assert short.output.startswith("201 shots: 201 to run\n") and "151 more row(s)" in short.output
    full = runner.invoke(app, ["plan", str(board), "--all"])
    assert full.exit_code == 0, full.output
    assert all(f"s{i:03d} " in full.output for i in range(201)) and "more row(s)" not in full.output


# ---- handed-off frames are keyed by their pixels ----------------------------------------------

FRAMES_BOARD = """
[film]
provider = "fake"
duration = 4
resolution = "360p"  # the frames handed off are the point, not the film's size: a quarter of 720p's stitch

[[shot]]
id = "a"
prompt = "a fox wakes"

[[shot]]
id = "b"
prompt = "the fox runs"
continues = "a"

[[shot]]
id = "c"
prompt = "the fox looks back"
first_frame = { shot = "a", frame = 2.0 }
"""


def _build(path: Path) -> tuple[Any, Any]:
    from storyboard.build import build, open_project

    project = open_project(path)
    return project, build(project, jobs=2)


def _job_of(fake: Any, shot: str) -> Any:
    return next(job for shot_id, job in fake.calls if shot_id == shot)


def test_handed_off_frames_are_keyed_by_pixels_not_png_bytes(write_board: Any, fake_provider: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from storyboard.cache import file_sha256
    from storyboard.executor import Outcome

    here = write_board(FRAMES_BOARD, folder="here")
    project, report = _build(here)
    assert report.count(Outcome.RENDERED) == 3
    lock_a = project.lock.shots["a"]
    last_png = project.cache.object_path(lock_a["last"])
    assert file_sha256(last_png) == lock_a["last"]  # the lock still pins the PNG object by its bytes
    b_job, c_job = _job_of(fake_provider, "b"), _job_of(fake_provider, "c")
    assert b_job.first_frame == media.png_pixel_digest(last_png) != lock_a["last"]
    tmp = project.cache.root / "probe.png"
    assert c_job.first_frame == media.extract_frame(project.cache.object_path(lock_a["clip"]), 2.0, tmp)
    keys = {s: project.lock.shots[s]["key"] for s in "abc"}

    # Another machine whose PNG encoder writes other bytes for the same pixels: same keys downstream.
    fake_provider.reset()
    monkeypatch.setattr(media, "PNG_COMPRESS_LEVEL", 9)
    there = write_board(FRAMES_BOARD, folder="there")
    project2, report2 = _build(there)
    assert report2.count(Outcome.RENDERED) == 3
    assert project2.lock.shots["a"]["last"] != lock_a["last"]  # the PNG bytes differ...
    assert {s: project2.lock.shots[s]["key"] for s in "abc"} == keys  # ...the requests do not


def test_a_clip_paid_for_under_the_png_keyed_request_is_not_paid_again(write_board: Any, fake_provider: Any) -> None:
    """A cache from before pixel keys: b's action sits under the key naming a's last frame by PNG bytes."""
    import json

    from storyboard.cache import cache_key
    from storyboard.executor import Outcome

    path = write_board(FRAMES_BOARD)
    project, _ = _build(path)
    actions = project.cache.root / "actions"
    for shot in "bc":  # file each dependant's action under its former key, as the former version did
        entry = project.lock.shots[shot]
        upstream_png = (project.lock.shots["a"]["last"] if shot == "b"
                        else project.cache.memo_sha(f"frame:{project.lock.shots['a']['clip']}:2.000000"))
        former = cache_key({**entry["components"], "first_frame": upstream_png})
        (actions / f"{entry['key']}.json").rename(actions / f"{former}.json")
    a_action = actions / f"{project.lock.shots['a']['key']}.json"
    data = json.loads(a_action.read_text())
    del data["pixels"]  # a's entry from the former version has no pixel digests either
    a_action.write_text(json.dumps(data))
    (project.cache.root / "pixels.json").unlink()
    from storyboard import frames

    frames._open.clear()
    fake_provider.reset()
    project2, report = _build(path)
    assert fake_provider.calls == [] and report.count(Outcome.CACHED) == 3
    for shot in "bc":  # filed under the pixel key now: found directly next time
        assert (actions / f"{project2.lock.shots[shot]['key']}.json").is_file()
        assert project2.lock.shots[shot]["key"] == project.lock.shots[shot]["key"]


def test_a_no_op_build_plans_once_and_reads_each_action_once(write_board: Any, fake_provider: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI plans for the cost and hands that plan to build(): one plan, one lookup per key."""
    from collections import Counter

    from storyboard import build as build_module
    from storyboard.build import build, open_project, plan_project
    from storyboard.cache import Cache
    from storyboard.executor import Outcome

    path = write_board(FRAMES_BOARD)
    _build(path)
    fake_provider.reset()
    project = open_project(path)
    lock_before = project.lock.path.read_bytes(), project.lock.path.stat().st_mtime_ns
    lookups: Counter[str] = Counter()
    original = Cache.get_action

    def counted(self: Cache, key: str) -> Any:
        lookups[key] += 1
        return original(self, key)

    monkeypatch.setattr(Cache, "get_action", counted)
    plans = []
    real_plan = build_module.plan

    def plan(*args: Any, **kwargs: Any) -> Any:
        plans.append(1)
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(build_module, "plan", plan)
    from storyboard.plan import Resolver

    jobs: Counter[str] = Counter()
    real_job = Resolver.job

    def job(self: Resolver, shot: Any) -> Any:
        jobs[shot.id] += 1
        return real_job(self, shot)

    monkeypatch.setattr(Resolver, "job", job)
    steps, planned = plan_project(project)
    report = build(project, planned=(steps, planned), on_event=lambda shot, state, info: None)
    assert report.count(Outcome.CACHED) == 3 and report.film is not None and fake_provider.calls == []
    assert plans == [1]  # plan_project's: build() did not plan again
    assert jobs == dict.fromkeys("abc", 1)  # the executor takes each cached shot as the plan found it
    shot_keys = {project.lock.shots[s]["key"] for s in "abc"}
    assert {k: n for k, n in lookups.items() if k in shot_keys} == dict.fromkeys(shot_keys, 1)
    # nothing changed: the lock is not rewritten
    assert (project.lock.path.read_bytes(), project.lock.path.stat().st_mtime_ns) == lock_before
