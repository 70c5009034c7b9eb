"""Media: the one module that finds ffmpeg, runs it, probes clips and extracts exact frames.

ffmpeg comes from `STORYBOARD_FFMPEG`, else the binary imageio-ffmpeg ships (one known build, so
the same inputs give the same bytes everywhere), else `PATH`. That build has no ffprobe, so probing
and frame extraction decode with PyAV, imported lazily because it is slow to import.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from storyboard.errors import MediaError

FrameAt = Literal["first", "last"] | float
"""A frame of a clip: the first, the last, or the one shown at a time in seconds."""


PNG_COMPRESS_LEVEL = 3
"""Fixed so frame bytes (and so downstream cache keys) never depend on a library default."""

CLEAN_PLATE = "storyboard clean plate"
"""Handler name of a clip's extra video track holding its pictures without burnt-in overlays.

The animatic draws a shot's id, caption and references on the clip it shows and keeps this
clean plate beside it: every frame extracted to hand to another shot comes from the plate, so
no shot inherits another's overlays. Clips without one hand off what they show.
"""

_STDERR_LINES = 20
_LAST_FRAME_MARGIN = 1.0
"""Seconds before a wanted time to seek to when looking for the frame shown then."""


@dataclass(frozen=True)
class MediaInfo:
    """What a clip holds, as decoded: size, timing and streams.

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels.
        fps: average frame rate of the video stream.
        frames: number of video frames.
        duration: length of the video stream in seconds.
        has_audio: whether the file has an audio stream.
        audio_duration: length of the audio stream in seconds, or None without audio.
        video_codec: decoder name of the video stream (e.g. "h264").
        audio_codec: decoder name of the audio stream, or None without audio.
    """

    width: int
    height: int
    fps: float
    frames: int
    duration: float
    has_audio: bool
    audio_duration: float | None
    video_codec: str
    audio_codec: str | None


def ffmpeg_exe() -> str:
    """The ffmpeg binary to run: `STORYBOARD_FFMPEG`, else imageio-ffmpeg's, else `PATH`.

    Raises:
        MediaError: no usable ffmpeg was found; the message says how to get one.
    """
    # Memoised per value of the variable, so changing it (tests, a long session) is honoured.
    return _find_ffmpeg(os.environ.get("STORYBOARD_FFMPEG") or None)


@functools.cache
def _find_ffmpeg(override: str | None) -> str:
    if override is not None:
        found = shutil.which(override)
        if found is None:
            raise MediaError(
                f"STORYBOARD_FFMPEG={override!r} is not an executable ffmpeg; "
                "point it at an ffmpeg binary or unset it"
            )
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError, OSError):
        pass  # no wheel for this platform: fall back to PATH
    found = shutil.which("ffmpeg")
    if found is None:
        raise MediaError(
            "ffmpeg not found: run `pip install imageio-ffmpeg` (it ships one), install ffmpeg "
            "on PATH, or set STORYBOARD_FFMPEG to an ffmpeg binary"
        )
    return found


def run_ffmpeg(args: Sequence[str]) -> None:
    """Run ffmpeg quietly with `args`, raising on failure.

    Args:
        args: everything after the binary and the fixed `-hide_banner -nostdin -loglevel error`.

    Raises:
        MediaError: ffmpeg is missing or exited non-zero; carries the exit code and the last
            20 lines of its stderr.
    """
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    except OSError as exc:
        raise MediaError(
            f"cannot run ffmpeg at {argv[0]}: {exc.strerror or exc}; "
            "set STORYBOARD_FFMPEG to a working ffmpeg binary"
        ) from exc
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-_STDERR_LINES:]
        how = (
            f"was killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"failed with exit code {proc.returncode}"
        )
        detail = "\n".join(lines) if lines else "(no output on stderr)"
        raise MediaError(f"ffmpeg {how}:\n{detail}")


@contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Open a media file with PyAV, turning every decoding failure into a MediaError."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            yield container
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"cannot decode {os.fspath(path)}: {exc}") from exc


def _video_stream(container: Any, path: str | os.PathLike[str], clean: bool = False) -> Any:
    """The video stream shown, or with `clean` the CLEAN_PLATE track when the clip has one."""
    if not container.streams.video:
        raise MediaError(f"{os.fspath(path)} has no video stream")
    stream = container.streams.video[0]
    if clean:
        plates = [s for s in container.streams.video if s.metadata.get("handler_name") == CLEAN_PLATE]
        stream = plates[0] if plates else stream
    # Frame threading speeds decoding up and cannot change the decoded pixels.
    stream.thread_type = "AUTO"
    return stream


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a clip: size, fps, frame count, durations and codecs.

    The frame count comes from the container's index when it has one (MP4 does), else from
    counting the video packets, one per frame.

    Raises:
        MediaError: the file is missing, not media, or has no video stream.
    """
    with _open(path) as container:
        video = _video_stream(container, path)
        rate = video.average_rate or video.guessed_rate or video.base_rate
        fps = float(rate) if rate else 0.0
        frames = int(video.frames or 0)
        if frames <= 0:
            frames = sum(1 for packet in container.demux(video) if packet.size)
        duration = _seconds(video.duration, video.time_base)
        if duration is None:
            duration = frames / fps if fps else 0.0
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_duration = None
        if audio is not None:
            audio_duration = _seconds(audio.duration, audio.time_base)
            if audio_duration is None and container.duration is not None:
                audio_duration = container.duration / 1_000_000
        return MediaInfo(
            width=video.codec_context.width,
            height=video.codec_context.height,
            fps=fps,
            frames=frames,
            duration=duration,
            has_audio=audio is not None,
            audio_duration=audio_duration,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )


def clean_plate_index(path: str | os.PathLike[str]) -> int | None:
    """Index among the clip's video streams of its CLEAN_PLATE track, or None without one."""
    with _open(path) as container:
        names = [s.metadata.get("handler_name") for s in container.streams.video]
    return names.index(CLEAN_PLATE) if CLEAN_PLATE in names else None


def _frame_time(frame: Any) -> float:
    return float(frame.time) if frame.time is not None else 0.0


def _first_frame(container: Any, video: Any) -> Any:
    for frame in container.decode(video):
        return frame
    return None


def _frame_at_or_before(container: Any, video: Any, target: float | None) -> Any:
    """The decoded frame with the largest time <= target (None: the last frame).

    For a time, seeks to a keyframe a margin before it, then decodes forward; the margin covers
    B-frame reordering, where the demuxer seeks by decode time and frames show later. For the
    last frame, seeks to the end: the demuxer lands on the last keyframe, and the frame shown
    last is decoded after it (B-frames reorder only within a GOP), so only the last GOP is
    decoded, however long the clip.
    """
    end = _seconds(video.duration, video.time_base)
    start = _seconds(video.start_time, video.time_base) or 0.0
    if target is None:
        seek_to = start if end is None else start + end
    else:
        seek_to = max(start, target - _LAST_FRAME_MARGIN)
    chosen = _scan(container, video, seek_to, target)
    if chosen is None and seek_to > start:  # an index that seeks past every frame
        chosen = _scan(container, video, start, target)
    return chosen


def _scan(container: Any, video: Any, seek_to: float, target: float | None) -> Any:
    # Always seek, even to the start: it also flushes frames a previous decode left behind.
    offset = int(Fraction(seek_to) / video.time_base)
    container.seek(offset, stream=video, backward=True, any_frame=False)
    chosen = None
    for frame in container.decode(video):
        if target is not None and chosen is not None and _frame_time(frame) > target + 1e-6:
            break
        chosen = frame
    return chosen


def _rgb(frame: Any, clip: str | os.PathLike[str]) -> Any:
    """The frame as an RGB array; to_ndarray honours its colour matrix (BT.709 for HD)."""
    if frame is None:
        raise MediaError(f"{os.fspath(clip)}: no video frame could be decoded")
    return frame.to_ndarray(format="rgb24")


def pixel_digest(rgb: Any) -> str:
    """sha256 of a decoded frame's pixels with its size and format: what a handed-off frame is keyed by.

    PNG bytes depend on the local zlib (and Pillow's encoder), so two machines extracting the same
    frame could write different files; the decoded pixels are the same everywhere.
    """
    import hashlib

    height, width = rgb.shape[:2]
    digest = hashlib.sha256(f"rgb24 {width}x{height}\n".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def png_pixel_digest(path: str | os.PathLike[str]) -> str:
    """pixel_digest of a PNG this module wrote (lossless RGB): its pixels, not its bytes."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except OSError as exc:
        raise MediaError(f"cannot read the frame {os.fspath(path)}: {exc}") from exc
    return pixel_digest(np.ascontiguousarray(rgb))


def _write_png(rgb: Any, dest: str | os.PathLike[str]) -> None:
    """Write an RGB array as PNG via a temp file + rename, with fixed settings, no metadata."""
    from PIL import Image

    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise MediaError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(rgb, "RGB").save(
                fh, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False
            )
        os.replace(tmp, dest)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise MediaError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extract_frame(clip: str | os.PathLike[str], at: FrameAt, dest: str | os.PathLike[str]) -> str:
    """Write one exact decoded frame of `clip` to `dest` as lossless RGB PNG.

    The frame comes from the clip's CLEAN_PLATE track when it has one.

    Args:
        clip: a video file.
        at: "first" (first decoded frame), "last" (last decoded frame of the video stream,
            whatever the audio does) or seconds from the start (the frame shown at that time:
            the largest presentation time <= `at`, clamped to the clip).
        dest: the PNG to write; written atomically, same bytes for the same clip.

    Returns:
        The frame's pixel_digest.

    Raises:
        MediaError: the clip cannot be decoded or has no video frames, or `dest` cannot be
            written.
    """
    if isinstance(at, str) and at not in ("first", "last"):
        raise ValueError(f"frame must be 'first', 'last' or seconds, not {at!r}")
    with _open(clip) as container:
        video = _video_stream(container, clip, clean=True)
        if at == "first":
            frame = _first_frame(container, video)
        elif at == "last":
            frame = _frame_at_or_before(container, video, None)
        else:
            start = _seconds(video.start_time, video.time_base) or 0.0
            frame = _frame_at_or_before(container, video, start + max(0.0, float(at)))
        rgb = _rgb(frame, clip)
    _write_png(rgb, dest)
    return pixel_digest(rgb)


def extract_first_last(
    clip: str | os.PathLike[str],
    first_dest: str | os.PathLike[str],
    last_dest: str | os.PathLike[str],
) -> tuple[str, str]:
    """Write the exact first and last frames of `clip` as PNGs, opening it once; returns their
    pixel digests.

    Raises:
        MediaError: the clip cannot be decoded or has no video frames, or a PNG cannot be
            written.
    """
    with _open(clip) as container:
        video = _video_stream(container, clip, clean=True)
        first = _rgb(_first_frame(container, video), clip)
        last = _frame_at_or_before(container, video, None)
        last = first if last is None else _rgb(last, clip)
    _write_png(first, first_dest)
    _write_png(last, last_dest)
    return pixel_digest(first), pixel_digest(last)
