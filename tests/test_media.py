"""Tests for storyboard.media: finding and running ffmpeg, probing, exact frame extraction."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from storyboard import media
from storyboard.errors import MediaError

FPS = 24


def _ffmpeg(*args: str) -> None:
    media.run_ffmpeg(list(args))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short lavfi clips: B-frames, several keyframes, audio outlasting video (the -sseof trap)."""
    root = tmp_path_factory.mktemp("clips")
    trap = root / "trap.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=s=320x240:r={FPS}:d=2",
        "-f", "lavfi", "-i", "sine=f=440:r=48000:d=3",
        "-c:v", "libx264", "-preset", "veryfast", "-g", "12", "-bf", "2",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mp4", str(trap),
    )  # fmt: skip
    silent = root / "silent.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=s=160x90:r={FPS}:d=1",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4", str(silent),
    )  # fmt: skip
    return {"trap": trap, "silent": silent}


def _decode_all(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


@pytest.fixture(scope="module")
def walked(clips: dict[str, Path]) -> list[np.ndarray]:
    """Every frame of the trap clip, decoded from the start, as RGB."""
    return [frame.to_ndarray(format="rgb24") for frame in _decode_all(clips["trap"])]


def test_probe_reports_the_streams(clips: dict[str, Path]) -> None:
    info = media.probe(clips["trap"])
    assert (info.width, info.height, info.fps, info.frames) == (320, 240, 24.0, 48)
    assert info.duration == pytest.approx(2.0)
    assert info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"
    assert info.audio_duration == pytest.approx(3.0, abs=0.05)


def test_probe_without_audio(clips: dict[str, Path]) -> None:
    info = media.probe(clips["silent"])
    assert info.frames == 24 and not info.has_audio
    assert info.audio_duration is None and info.audio_codec is None


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_undecodable_file_is_a_media_error_naming_it(tmp_path: Path, content: bytes) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(content)
    with pytest.raises(MediaError, match="junk.mp4"):
        media.probe(junk)
    with pytest.raises(MediaError, match="junk.mp4"):
        media.extract_frame(junk, "last", tmp_path / "out.png")
    with pytest.raises(MediaError, match="missing.mp4"):
        media.probe(tmp_path / "missing.mp4")


def test_last_frame_equals_the_last_frame_of_the_whole_stream(
    clips: dict[str, Path], walked: list[np.ndarray], tmp_path: Path
) -> None:
    media.extract_frame(clips["trap"], "last", tmp_path / "last.png")
    last = _png(tmp_path / "last.png")
    assert np.array_equal(last, walked[-1])
    assert not np.array_equal(last, walked[-2])


def test_first_frame_and_one_pass_variant(
    clips: dict[str, Path], walked: list[np.ndarray], tmp_path: Path
) -> None:
    media.extract_frame(clips["trap"], "first", tmp_path / "first.png")
    assert np.array_equal(_png(tmp_path / "first.png"), walked[0])
    media.extract_first_last(clips["trap"], tmp_path / "a.png", tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "first.png").read_bytes()
    assert np.array_equal(_png(tmp_path / "b.png"), walked[-1])


@pytest.mark.parametrize(
    ("seconds", "index"),
    [(0.0, 0), (1.0, 24), (1.01, 24), (0.99, 23), (1.5, 36), (-3.0, 0), (99.0, 47)],
)
def test_frame_at_seconds_is_the_one_shown_then(
    clips: dict[str, Path], walked: list[np.ndarray], tmp_path: Path, seconds: float, index: int
) -> None:
    media.extract_frame(clips["trap"], seconds, tmp_path / "at.png")
    assert np.array_equal(_png(tmp_path / "at.png"), walked[index])


def test_extraction_is_deterministic_and_atomic(clips: dict[str, Path], tmp_path: Path) -> None:
    one, two = tmp_path / "sub" / "one.png", tmp_path / "two.png"
    media.extract_frame(clips["trap"], 0.5, one)
    media.extract_frame(clips["trap"], 0.5, two)
    assert one.read_bytes() == two.read_bytes()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["one.png", "sub", "two.png"]
    with pytest.raises(ValueError):
        media.extract_frame(clips["trap"], "middle", one)  # type: ignore[arg-type]


def test_sniff(clips: dict[str, Path], tmp_path: Path) -> None:
    Image.new("RGB", (4, 4), "red").save(tmp_path / "a.png")
    Image.new("RGB", (4, 4), "red").save(tmp_path / "b.dat", format="JPEG")
    (tmp_path / "junk").write_bytes(b"GIF89a and more bytes")
    (tmp_path / "empty").write_bytes(b"")
    from storyboard.sniff import sniff

    assert sniff(tmp_path / "a.png") == "png"
    assert sniff(tmp_path / "b.dat") == "jpeg"
    assert sniff(clips["trap"]) == "mp4"
    assert sniff(tmp_path / "junk") is None
    assert sniff(tmp_path / "empty") is None
    assert sniff(tmp_path / "nope") is None


def _fake_ffmpeg(path: Path, script: str) -> Path:
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_ffmpeg_exe_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORYBOARD_FFMPEG", raising=False)
    default = media.ffmpeg_exe()
    assert os.access(default, os.X_OK)
    fake = _fake_ffmpeg(tmp_path / "my-ffmpeg", "exit 0")
    monkeypatch.setenv("STORYBOARD_FFMPEG", str(fake))
    assert media.ffmpeg_exe() == str(fake)
    monkeypatch.setenv("STORYBOARD_FFMPEG", str(tmp_path / "absent"))
    with pytest.raises(MediaError, match="STORYBOARD_FFMPEG"):
        media.ffmpeg_exe()
    monkeypatch.delenv("STORYBOARD_FFMPEG")
    assert media.ffmpeg_exe() == default


def test_a_binary_that_vanished_is_a_media_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_ffmpeg(tmp_path / "gone-ffmpeg", "exit 0")
    monkeypatch.setenv("STORYBOARD_FFMPEG", str(fake))
    media.run_ffmpeg(["-version"])
    fake.unlink()
    with pytest.raises(MediaError, match="cannot run ffmpeg"):
        media.run_ffmpeg(["-version"])


def test_failure_carries_exit_code_and_the_last_20_lines_of_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_ffmpeg(
        tmp_path / "noisy-ffmpeg", 'for i in $(seq 1 30); do echo "line $i" >&2; done; exit 3'
    )
    monkeypatch.setenv("STORYBOARD_FFMPEG", str(fake))
    with pytest.raises(MediaError) as caught:
        media.run_ffmpeg(["-i", "x"])
    message = caught.value.message
    assert "exit code 3" in message
    assert "line 30" in message and "line 11" in message and "line 10\n" not in message


def test_real_ffmpeg_failure(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"(?s)exit code \d+:\n.*absent\.mp4") as caught:
        media.run_ffmpeg(["-i", str(tmp_path / "absent.mp4"), "-f", "null", "-"])
    assert caught.value.exit_code == 1


def test_falls_back_to_path_then_explains_how_to_get_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORYBOARD_FFMPEG", raising=False)
    monkeypatch.setitem(__import__("sys").modules, "imageio_ffmpeg", None)  # import fails
    fake = _fake_ffmpeg(tmp_path / "ffmpeg", "exit 0")
    monkeypatch.setenv("PATH", str(tmp_path))
    media._find_ffmpeg.cache_clear()
    try:
        assert media.ffmpeg_exe() == str(fake)
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        media._find_ffmpeg.cache_clear()
        with pytest.raises(MediaError, match="pip install imageio-ffmpeg"):
            media.ffmpeg_exe()
    finally:
        media._find_ffmpeg.cache_clear()


def test_unwritable_destination_is_a_media_error(clips: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MediaError, match="cannot write"):
        media.extract_frame(clips["trap"], "first", blocker / "frame.png")
