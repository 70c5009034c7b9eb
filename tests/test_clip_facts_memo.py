"""A clip's facts and cut points are memoised by its bytes (storyboard.edit.facts_memo): an
unchanged re-stitch, in the real cache, demuxes no clip and makes the same film; a corrupt entry is
read again from the clip; facts from the memo equal facts from the clip."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import pytest

from storyboard.cache import Cache
from storyboard.edit import facts_memo
from storyboard.edit.clip_facts import ClipFacts, read_clip
from storyboard.edit.conform import Profile
from storyboard.edit.facts_memo import facts_name, from_json, read_facts, to_json
from storyboard.edit.param_sets import mov_avcc
from storyboard.edit.stitch import StitchStats, stitch
from storyboard.edit.timeline import ClipPiece, Join, Timeline
from tests._clips import render_clip
from tests.test_stitch import DirMemo

PROFILE = Profile(width=320, height=180, fps=24)
VEO = ("-c:v", "libx264", "-profile:v", "high", "-preset", "ultrafast", "-bf", "2",
       "-x264-params", "b-adapt=0", "-g", "12", "-keyint_min", "12", "-sc_threshold", "0",
       "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-r", "24")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, ClipPiece]:
    """Two 1.5 s clips of one setting (B-frames, a keyframe every 12 frames, bt709 tags)."""
    folder = tmp_path_factory.mktemp("facts")
    pieces = {}
    for name, hue in (("a", 0), ("b", 120)):
        path = folder / f"{name}.mp4"
        sha = render_clip(path, hue, 1.5, "0.3*sin(2*PI*440*t)", VEO)
        pieces[name] = ClipPiece(shot=name, sha=sha, path=path, in_=0.0, out=1.5)
    return pieces


def edit(clips: dict[str, ClipPiece]) -> Timeline:
    """a trimmed mid-GOP, crossfade, b whole: both clips smart-cut (their cut points used)."""
    return Timeline((replace(clips["a"], in_=0.2), clips["b"]), (Join("crossfade", 0.25),))


def test_unchanged_restitch_demuxes_no_clip(clips, tmp_path, monkeypatch):
    cache = Cache(tmp_path / "cache")
    first = stitch(edit(clips), tmp_path / "one.mp4", profile=PROFILE, memo=cache)
    assert first.spans_copied >= 1  # the smart cut used the memoised cut points' first reading
    reads: list[Path] = []
    monkeypatch.setattr(facts_memo, "read_clip", lambda path: reads.append(path) or read_clip(path))
    opened: list[str] = []
    real = av.open
    monkeypatch.setattr(av, "open", lambda file, *a, **k: opened.append(str(file)) or real(file, *a, **k))
    again = stitch(edit(clips), tmp_path / "two.mp4", profile=PROFILE, memo=cache)
    assert reads == []
    assert not {str(p.path) for p in clips.values()} & set(opened)
    assert again == replace(first, spans_copied=0, spans_reused=first.spans_copied,
                            parts_encoded=0, parts_reused=first.parts_encoded + first.parts_reused,
                            conforms_encoded=0, conforms_reused=2, windows_encoded=0,
                            windows_reused=1)
    assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "two.mp4").read_bytes()


def test_a_corrupt_entry_is_read_again_from_the_clip(clips, tmp_path, monkeypatch):
    memo = DirMemo(tmp_path / "memo")
    piece = clips["a"]
    stitch(edit(clips), tmp_path / "one.mp4", profile=PROFILE, memo=memo)
    entry = memo._path(facts_name(piece.sha))
    good = json.loads(entry.read_text())
    reads: list[Path] = []
    monkeypatch.setattr(facts_memo, "read_clip", lambda path: reads.append(path) or read_clip(path))
    for junk in (b"\x00not json", json.dumps({**good, "frames": -1}).encode(),
                 json.dumps({**good, "cuts": [0, 10_000]}).encode(),
                 json.dumps({**good, "clip": clips["b"].sha}).encode(), b"[]"):
        entry.write_bytes(junk)
        stitch(edit(clips), tmp_path / "two.mp4", profile=PROFILE, memo=memo)
        assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "two.mp4").read_bytes()
        assert json.loads(entry.read_text()) == good  # replaced by the clip's facts
    assert reads == [piece.path] * 5
    entry.unlink()  # a missing entry too
    assert read_facts(piece.path, piece.sha, memo, tmp_path) == read_clip(piece.path)
    assert entry.is_file()


def test_memoised_facts_equal_the_clips(clips, tmp_path):
    for piece in clips.values():
        facts = read_clip(piece.path)
        assert isinstance(facts.frame_rate, Fraction) and facts.frame_rate == 24
        assert facts.extradata.startswith(b"\x01") and facts.reorders
        assert facts.colour != (2, 2, 2, 0) and facts.cuts == (0, 12, 24)  # tagged, not default
        assert facts.sound == ("aac", 48000, 2) and facts.sound_config and facts.aac_run
        stored = json.loads(json.dumps(to_json(facts, piece.sha)))
        assert from_json(stored, piece.sha) == facts
        memo = DirMemo(tmp_path / piece.shot)
        assert read_facts(piece.path, piece.sha, memo, tmp_path) == facts  # demuxed, memoised
        assert read_facts(piece.path, piece.sha, memo, tmp_path) == facts  # from the memo


@pytest.mark.parametrize("change", [
    {"v": 0}, {"frames": True}, {"width": 0}, {"duration": "2"}, {"duration": float("nan")},
    {"frame_rate": [24, 0]}, {"frame_rate": 24}, {"extradata": "zz"}, {"colour": [1, 1, 1]},
    {"cuts": [12, 0]}, {"cuts": [0, 0]}, {"pix_fmt": 3}, {"has_audio": 1}, {"codec": None},
    {"sound": None}, {"sound": ["aac", 48000]}, {"sound_config": 1}, {"aac_run": 0},
])
def test_an_entry_with_a_bad_field_is_refused(change):
    facts = ClipFacts(duration=1.5, frames=36, has_audio=True, codec="h264", width=320, height=180,
                      pix_fmt="yuv420p", square_pixels=True, frame_rate=Fraction(24),
                      reorders=True, starts_on_idr=True, extradata=b"\x01d\x00\x0d",
                      x264_options="cabac=1", colour=(1, 1, 1, 1), cuts=(0, 12, 24),
                      sound=("aac", 48000, 2), sound_config=b"\x11\x90", aac_run=72704)
    good = to_json(facts, "f" * 64)
    assert from_json(good, "f" * 64) == facts
    assert from_json({**good, **change}, "f" * 64) is None
    assert from_json({k: v for k, v in good.items() if k != next(iter(change))}, "f" * 64) is None


def test_segment_parameter_sets_read_from_the_moov_box_are_pyavs(clips, tmp_path):
    memo = DirMemo(tmp_path / "memo")
    stitch(edit(clips), tmp_path / "film.mp4", profile=PROFILE, memo=memo)
    segments = memo.segments()
    assert len(segments) >= 5
    for path in [*segments, clips["a"].path]:
        with av.open(str(path)) as container:
            expected = bytes(container.streams.video[0].codec_context.extradata)
        assert mov_avcc(path) == expected and expected.startswith(b"\x01")
    junk = tmp_path / "junk.mov"
    for data in (b"", b"\x00\x00\x00\x10moov" + b"\x00" * 4, b"\xff" * 64):
        junk.write_bytes(data)
        assert mov_avcc(junk) is None
