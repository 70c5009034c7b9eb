"""`storyboard export`: a built board's timeline read back with OTIO, range by range, in every format."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import opentimelineio as otio
import pytest

from storyboard.lockfile import LockFile, lock_path
from storyboard.media import run_ffmpeg

FPS = 24

BOARD = """
[film]
title = "Storm Coast"
output = "build/coast.mp4"
duration = 4
seed = 3

[[shot]]
id = "one"
prompt = "a boat leaves the harbour"

[[shot]]
id = "two"
prompt = "the boat reaches open sea"

[[shot]]
id = "three"
prompt = "a storm gathers over the cliffs"

[edit]
transition = { kind = "crossfade", duration = 0.5 }

[[edit.title]]
text = "Storm Coast"
before = "one"
duration = 2.0

[[edit.clip]]
shot = "one"
in = 0.5
out = 3.5
transition = { kind = "wipeleft", duration = 0.5 }

[[edit.clip]]
shot = "two"
in = 1.0
hold = 1.5
transition = { kind = "dip", duration = 1.0, color = "#ffffff" }

[[edit.clip]]
shot = "three"
out = 3.0
hold = 0.5

[[edit.text]]
shot = "one"
text = "Cape Wrath, 1899"
start = 0.5
end = 2.0

[[edit.sound]]
path = "assets/music.wav"
start = 1.0
in = 0.5
out = 4.5
gain = -6.0
duck = true
"""


def f(seconds: float) -> int:
    return round(seconds * FPS)


# What the board above says, in frames, worked out by hand: (name, source start, frames, film frame).
# Each transition overlaps the two pieces it joins; the outgoing piece ends that much early (its
# hold first), and the next starts where the film shows it.
TITLE = ("title-1", 0, f(2.0) - f(0.5), 0)
ONE = ("one", f(0.5), f(3.0) - f(0.5), TITLE[2])
TWO = ("two", f(1.0), f(3.0), ONE[3] + ONE[2])
TWO_HOLD = ("two hold", f(4.0) - 1, f(1.5) - f(1.0), TWO[3] + TWO[2])
THREE = ("three", 0, f(3.0), TWO_HOLD[3] + TWO_HOLD[2])
THREE_HOLD = ("three hold", f(3.0) - 1, f(0.5), THREE[3] + THREE[2])
PICTURE = [TITLE, ONE, TWO, TWO_HOLD, THREE, THREE_HOLD]
TRANSITIONS = [("crossfade", f(0.5)), ("wipeleft", f(0.5)), ("dip", f(1.0))]
MUSIC = ("sound-1", f(0.5), f(4.0), f(1.0))


def storyboard(*args: str) -> subprocess.CompletedProcess[str]:
    consent = ["--yes"] if args[:1] == ("build",) else []
    return subprocess.run([sys.executable, "-m", "storyboard", *args, *consent], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    (root / "assets").mkdir()
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=5",
                str(root / "assets" / "music.wav")])
    board = root / "storyboard.toml"
    board.write_text(BOARD)
    result = storyboard("build", str(board), "--only", "one", "--only", "two", "--only", "three")
    assert result.returncode == 0, result.stderr  # the shots, not the film: the export needs only them
    return board


@pytest.fixture(scope="module")
def exported(built: Path) -> dict[str, Path]:
    paths = {}
    for fmt, suffix in (("otio", ".otio"), ("fcp7", ".xml"), ("edl", ".edl")):
        result = storyboard("export", str(built), "--format", fmt)
        assert result.returncode == 0, result.stderr
        paths[fmt] = built.parent / "build" / f"coast{suffix}"
        assert f"export: {paths[fmt]}" in result.stdout
    return paths


def _read(path: Path) -> otio.schema.Timeline:
    adapter = {".otio": "otio_json", ".xml": "fcp_xml", ".edl": "cmx_3600"}[path.suffix]
    return otio.adapters.read_from_file(str(path), adapter_name=adapter, **({"rate": FPS} if adapter == "cmx_3600"
                                                                           else {}))


def _items(track: otio.schema.Track) -> list[tuple[str, int, int, int]]:
    """(name, source start, frames, film frame) of each clip; gaps left out."""
    rows = []
    for item in track:
        if isinstance(item, otio.schema.Clip):
            start = track.range_of_child(item).start_time.rescaled_to(FPS).value
            rng = item.source_range
            rows.append((item.name, round(rng.start_time.rescaled_to(FPS).value),
                         round(rng.duration.rescaled_to(FPS).value), round(start)))
    return rows


def _transitions(track: otio.schema.Track) -> list[tuple[str, int, int, int]]:
    """(name, in offset, out offset, film frame of the cut) of each transition."""
    rows = []
    for index, item in enumerate(track):
        if isinstance(item, otio.schema.Transition):
            cut = track.range_of_child(track[index + 1]).start_time.rescaled_to(FPS).value
            rows.append((item.name, round(item.in_offset.rescaled_to(FPS).value),
                         round(item.out_offset.rescaled_to(FPS).value), round(cut)))
    return rows


def _video(timeline: otio.schema.Timeline) -> otio.schema.Track:
    (track,) = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    return track


def _expected_transitions() -> list[tuple[str, int, int, int]]:
    cuts = [ONE[3], TWO[3], THREE[3]]
    return [(name, 0, frames, cut) for (name, frames), cut in zip(TRANSITIONS, cuts)]


def test_otio_round_trip_keeps_every_range_transition_and_metadata(built, exported):
    timeline = _read(exported["otio"])
    video = _video(timeline)
    assert _items(video) == [(n.replace("title-1", "title-1"), *rest) for n, *rest in PICTURE]
    assert _transitions(video) == _expected_transitions()
    assert video.duration().rescaled_to(FPS).value == THREE_HOLD[3] + THREE_HOLD[2]
    clips = {c.name: c for c in video.find_clips()}
    assert isinstance(clips["title-1"].media_reference, otio.schema.GeneratorReference)
    assert [m.name for m in clips["title-1"].markers] == ["Storm Coast"]
    (text,) = clips["one"].markers
    assert text.name == "Cape Wrath, 1899"
    assert (text.marked_range.start_time.value, text.marked_range.duration.value) == (f(0.5) + f(0.5), f(1.5))
    for hold in ("two hold", "three hold"):
        assert [type(e) for e in clips[hold].effects] == [otio.schema.FreezeFrame]
    lock = LockFile(lock_path(built)).shots
    for shot in ("one", "two", "three"):
        about = clips[shot].metadata["storyboard"]
        assert (about["shot"], about["key"], about["provider"]) == (shot, lock[shot]["key"], "animatic")
    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert [t.name for t in audio] == ["A1 clips", "A sound-1"]
    assert _items(audio[0]) == [row for row in PICTURE if row[0] in ("one", "two", "three")]
    assert _items(audio[1]) == [MUSIC]
    assert audio[1].find_clips()[0].media_reference.target_url == (built.parent / "assets/music.wav").as_uri()


def test_fcp7_round_trip_keeps_ranges_with_holds_as_stills(built, exported):
    timeline = _read(exported["fcp7"])
    video = _video(timeline)
    stills = {"two hold": (0, TWO_HOLD[2]), "three hold": (0, THREE_HOLD[2])}
    assert _items(video) == [(n, *stills.get(n, (s, d)), at) for n, s, d, at in PICTURE]
    assert _transitions(video) == _expected_transitions()
    clips = {c.name: c for c in video.find_clips()}
    for hold in stills:
        url = clips[hold].media_reference.target_url
        assert url.endswith(".png") and Path(url.removeprefix("file://")).is_file()
    assert clips["one"].metadata["fcp_xml"]["comments"]["mastercomment1"] == "shot one"
    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert [_items(t) for t in audio] == [[r for r in PICTURE if r[0] in ("one", "two", "three")], [MUSIC]]


def test_edl_round_trip_keeps_the_picture_with_dissolves_and_freezes(built, exported):
    text = exported["edl"].read_text()
    video = _video(_read(exported["edl"]))
    lock = LockFile(lock_path(built)).shots
    reels = {c.name: c.metadata["cmx_3600"]["reel"] for c in video.find_clips() if c.name in lock}
    assert reels == {shot: (shot[:4].upper() + lock[shot]["clip"].upper())[:8] for shot in ("one", "two", "three")}
    assert [row[1:] for row in _items(video)] == [row[1:] for row in PICTURE]
    assert [(t[1:]) for t in _transitions(video)] == [t[1:] for t in _expected_transitions()]
    clips = video.find_clips()
    assert [type(e) for e in clips[3].effects] == [otio.schema.FreezeFrame]
    assert isinstance(clips[0].media_reference, otio.schema.GeneratorReference)  # the title: black (BL)
    for shot in ("one", "two", "three"):
        assert f"* FROM CLIP: {(exported['edl'].parent / 'media' / f'{shot}.mp4').as_uri()}" in text \
            or f"* TO CLIP: {(exported['edl'].parent / 'media' / f'{shot}.mp4').as_uri()}" in text


def test_media_are_the_clips_bytes_linked_beside_the_film(built, exported):
    timeline = _read(exported["otio"])
    lock = LockFile(lock_path(built)).shots
    for clip in _video(timeline).find_clips():
        if clip.metadata["storyboard"].get("shot") is None:
            continue
        path = Path(clip.media_reference.target_url.removeprefix("file://"))
        shot = clip.metadata["storyboard"]["shot"]
        assert path == built.parent / "build" / "media" / f"{shot}.mp4"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == lock[shot]["clip"]
        assert os.access(path, os.R_OK) and not path.stat().st_mode & 0o222
        assert clip.media_reference.available_range.duration.value == f(4.0)


def test_export_again_keeps_the_links_and_writes_the_same(built, exported):
    before = {fmt: path.read_bytes() for fmt, path in exported.items()}
    inode = (built.parent / "build" / "media" / "one.mp4").stat().st_ino
    for fmt in before:
        assert storyboard("export", str(built), "--format", fmt).returncode == 0
        assert exported[fmt].read_bytes() == before[fmt]
    assert (built.parent / "build" / "media" / "one.mp4").stat().st_ino == inode


def test_out_names_another_file(built, tmp_path):
    out = tmp_path / "handoff" / "cut.otio"
    result = storyboard("export", str(built), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert _items(_video(_read(out))) == PICTURE


def test_unbuilt_shots_are_refused_before_anything_is_written(built, tmp_path):
    board = tmp_path / "storyboard.toml"
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "music.wav").write_bytes((built.parent / "assets" / "music.wav").read_bytes())
    board.write_text(BOARD.replace("a storm gathers", "a gale gathers"))
    result = storyboard("export", str(board), "--cache-dir", str(built.parent / ".storyboard"))
    assert result.returncode == 2
    assert "cannot export: 1 shot(s) of the film are not built: 'three' (" in result.stderr
    assert "run `storyboard build" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "build").exists()


def test_an_unknown_format_is_a_usage_error(built):
    result = storyboard("export", str(built), "--format", "aaf")
    assert result.returncode == 2 and "aaf" in result.stderr


def _copy_board(built: Path, root: Path) -> Path:
    """The built board in another folder, sharing its cache (--cache-dir) and its lock."""
    (root / "assets").mkdir(parents=True)
    for name in ("storyboard.toml", "storyboard.lock", "assets/music.wav"):
        (root / name).write_bytes((built.parent / name).read_bytes())
    return root / "storyboard.toml"


def test_a_media_folder_leading_outside_the_board_is_refused(built, tmp_path):
    board = _copy_board(built, tmp_path / "board")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "board" / "build").symlink_to(tmp_path / "elsewhere")
    result = storyboard("export", str(board), "--cache-dir", str(built.parent / ".storyboard"))
    assert result.returncode == 2, result.stderr
    assert "leads outside the storyboard's folder" in result.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_media_are_copied_where_a_hard_link_cannot_be_made(built, tmp_path, monkeypatch):
    from storyboard.build import open_project
    from storyboard.edit import export as export_module

    board = _copy_board(built, tmp_path / "board")
    project = open_project(board, cache_dir=built.parent / ".storyboard")

    def no_link(source, dest):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(export_module.os, "link", no_link)
    result = export_module.export(project, "otio")
    lock = LockFile(lock_path(built)).shots
    for shot in ("one", "two", "three"):
        copy = result.media / f"{shot}.mp4"
        assert copy.stat().st_nlink == 1
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == lock[shot]["clip"]
