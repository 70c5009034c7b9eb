"""Stitching: join conformed clips into the film, re-encoding only what a change touches.

The film is a list of segments joined by the concat demuxer with the video stream-copied::

    cut:        whole_0 | whole_1 | ... | whole_n-1
    crossfade:  head_0 | body_0 | window_0,1 | body_1 | window_1,2 | ... | body_n-1 | tail_n-1

Each clip is conformed once (``conform.py``) and each window (the tail of one clip blended with
the head of the next) is encoded once; both are memoised by content, so changing one shot
re-encodes its conform and the two windows that touch it, and copies everything else. Audio stays
PCM until the end and is encoded to AAC once, over the whole film: stream-copying AAC clips
drifts 21 ms per join (encoder priming), and one ``xfade`` chain over every clip takes memory
that grows faster than the clip count.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from storyboard.conform import (
    BITEXACT_ARGS,
    CONFORM_VERSION,
    SEGMENT_SUFFIX,
    Profile,
    build_conform_command,
    conform_key,
    conform_parts,
    digest,
    frames_for,
    segment_output_args,
)
from storyboard.errors import MediaError, StitchError
from storyboard.media import ffmpeg_exe, probe, run_ffmpeg

__all__ = [
    "Memo",
    "Profile",
    "StitchStats",
    "Transition",
    "build_concat_command",
    "build_concat_list",
    "build_window_command",
    "stitch",
    "window_key",
]

AAC_BITRATE_PER_CHANNEL = 96_000
LOUDNORM = "loudnorm=I=-23:TP=-1:LRA=11"
"""EBU R128 programme loudness (-23 LUFS, true peak -1 dBTP), single pass, whole film."""


@dataclass(frozen=True)
class Transition:
    """How consecutive clips join: a cut, a crossfade, or a fade (dip to black) of ``duration`` s.

    Crossfades and fades overlap the clips, so the film is ``(n - 1) * duration`` shorter than its
    clips. The duration is rounded to whole frames of the film (``edge_frames``), at least two.
    """

    kind: Literal["cut", "crossfade", "fade"] = "cut"
    duration: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("cut", "crossfade", "fade"):
            raise ValueError(f"unknown transition {self.kind!r}: use cut, crossfade or fade")
        if self.kind == "cut" and self.duration != 0:
            raise ValueError("a cut has no duration")
        if self.kind != "cut" and not self.duration > 0:
            raise ValueError(f"a {self.kind} needs a duration above 0 s, got {self.duration}")

    def edge_frames(self, fps: int) -> int:
        """Frames each join overlaps: the duration rounded to whole frames, 0 for a cut."""
        return 0 if self.kind == "cut" else max(2, frames_for(self.duration, fps))


class Memo(Protocol):
    """A content-addressed memo of derived files (the build cache implements it)."""

    def memo_get(self, name: str) -> Path | None:
        """The cached file stored under ``name``, verified, or None."""

    def memo_put(self, name: str, produced: Path) -> Path:
        """Adopt ``produced`` under ``name`` atomically (the file is moved); return its cached path."""


@dataclass(frozen=True)
class StitchStats:
    """What a stitch encoded and what it reused from the memo."""

    conforms_encoded: int = 0
    conforms_reused: int = 0
    windows_encoded: int = 0
    windows_reused: int = 0
    segments: int = 0


def window_key(tail_key: str, head_key: str, kind: str) -> str:
    """Key of the window joining the clip conformed under ``tail_key`` to the one under ``head_key``.

    The conform keys carry both clips' hashes, the profile and the overlap in frames.
    """
    return digest({"v": CONFORM_VERSION, "step": "window", "tail": tail_key, "head": head_key,
                   "kind": kind})  # fmt: skip


def build_window_command(
    tail: Path, head: Path, out: Path, *, profile: Profile, kind: str, edge: int
) -> list[str]:
    """ffmpeg arguments that join ``tail`` to ``head`` (both ``edge`` frames long) into ``out``.

    A crossfade blends picture and sound linearly over the whole window. A fade shows the first
    half of ``tail`` fading to black and silence, then the second half of ``head`` fading in
    (``xfade``'s ``fadeblack`` is lopsided: out in a fifth of the time, in over the rest). Either
    way the window has exactly ``edge`` frames and ``profile.samples_at(edge)`` samples.
    """
    samples = profile.samples_at(edge)
    if kind == "crossfade":
        graph = [
            f"[0:v][1:v]xfade=transition=fade:duration={edge / profile.fps:.9f}:offset=0,"
            f"format={profile.pix_fmt},tpad=stop_mode=clone:stop=-1,trim=end_frame={edge},"
            "setpts=PTS-STARTPTS[v]",
            f"[0:a]afade=t=out:ss=0:ns={samples}[a0]",
            f"[1:a]afade=t=in:ss=0:ns={samples}[a1]",
            "[a0][a1]amix=inputs=2:duration=longest:normalize=0,"
            f"aformat=sample_fmts=s16,atrim=end_sample={samples}[a]",
        ]
    elif kind == "fade":
        half = edge // 2
        cut = profile.samples_at(half)
        graph = [
            f"[0:v]trim=end_frame={half},fade=t=out:s=0:n={half}[v0]",
            f"[1:v]trim=start_frame={half},setpts=PTS-STARTPTS,fade=t=in:s=0:n={edge - half}[v1]",
            f"[0:a]atrim=end_sample={cut},afade=t=out:ss=0:ns={cut}[a0]",
            f"[1:a]atrim=start_sample={cut}:end_sample={samples},asetpts=PTS-STARTPTS,"
            f"afade=t=in:ss=0:ns={samples - cut}[a1]",
            f"[v0][a0][v1][a1]concat=n=2:v=1:a=1[vj][a];[vj]format={profile.pix_fmt}[v]",
        ]
    else:
        raise ValueError(f"no window for a {kind!r}")
    return ["-y", "-i", str(tail), "-i", str(head), "-filter_complex", ";".join(graph),
            *segment_output_args("[v]", "[a]", out, profile)]  # fmt: skip


def build_concat_list(segments: Sequence[Path]) -> str:
    """The concat demuxer's script naming ``segments`` in order (absolute, quoted paths)."""
    lines = ["ffconcat version 1.0"]
    for path in segments:
        quoted = os.path.abspath(path).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def build_concat_command(
    concat_list: Path, out: Path, *, profile: Profile, normalize_audio: bool = False
) -> list[str]:
    """ffmpeg arguments that join the segments named in ``concat_list`` into the MP4 ``out``.

    Video is stream-copied; the PCM audio is encoded to AAC once (after loudness normalisation
    when ``normalize_audio``).
    """
    audio_filter = []
    if normalize_audio:
        audio_filter = ["-af", f"{LOUDNORM},aresample={profile.sample_rate}"]
    return [
        "-y", "-f", "concat", "-safe", "0", "-i", str(concat_list),
        "-map", "0:v:0", "-map", "0:a:0", "-c:v", "copy", *audio_filter,
        "-c:a", "aac", "-b:a", str(AAC_BITRATE_PER_CHANNEL * profile.channels),
        "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
        *BITEXACT_ARGS, "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip


def stitch(
    clips: Sequence[tuple[str, Path]],
    out: Path,
    *,
    profile: Profile,
    transition: Transition,
    memo: Memo,
    normalize_audio: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> StitchStats:
    """Stitch ``clips`` into the film ``out``, reusing every conform and window ``memo`` holds.

    Args:
        clips: ``(sha256 of the clip's bytes, path)`` in film order.
        out: the film (MP4: H.264 + AAC), written atomically; never left partial.
        profile: the film's size, fps, pixel format and audio layout.
        transition: how clips join; see ``Transition``.
        memo: where conformed clips and windows are kept between builds.
        normalize_audio: normalise the film's loudness (EBU R128) in the final encode.
        on_step: called with a line such as ``"conform clip 2/5 (b.mp4)"`` before each encode.

    Returns:
        How many conforms and windows were encoded and how many were reused.

    Raises:
        StitchError: no clips, a clip too short for the transition, or ffmpeg failed; the message
            names the step and the clip and ends with ffmpeg's own words.
    """
    if not clips:
        raise StitchError("stitch: the film has no clips")
    report = on_step or (lambda line: None)
    edge = transition.edge_frames(profile.fps) if len(clips) > 1 else 0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stitch-", dir=out.parent) as work_dir:
        work = Path(work_dir)
        stats = _Counts()
        encoder = _encoder_id()
        keys = [conform_key(sha, profile, edge, encoder=encoder) for sha, _ in clips]
        pieces = _conform_all(clips, keys, work, profile, edge, memo, stats, report)
        segments = _join_plan(clips, keys, pieces, work, profile, transition.kind, edge, memo,
                              stats, report)  # fmt: skip
        concat_list = work / "segments.ffconcat"
        concat_list.write_text(build_concat_list(segments), encoding="utf-8")
        report(f"join {len(segments)} segments into {out.name}")
        _write_atomically(out, lambda tmp: _ffmpeg(
            build_concat_command(concat_list, tmp, profile=profile, normalize_audio=normalize_audio),
            f"joining {len(segments)} segments into {out}",
        ))  # fmt: skip
    return StitchStats(stats.conforms_encoded, stats.conforms_reused, stats.windows_encoded,
                       stats.windows_reused, len(segments))  # fmt: skip


@dataclass
class _Counts:
    conforms_encoded: int = 0
    conforms_reused: int = 0
    windows_encoded: int = 0
    windows_reused: int = 0


def _conform_all(clips, keys, work, profile, edge, memo, stats, report) -> list[dict[str, Path]]:
    """Conform every clip (once per distinct clip), returning each clip's pieces by name."""
    done: dict[str, dict[str, Path]] = {}
    pieces = []
    for index, ((_, path), key) in enumerate(zip(clips, keys, strict=True), start=1):
        if key not in done:
            cached = {part: memo.memo_get(_conform_name(key, part)) for part in conform_parts(edge)}
            if all(cached.values()):
                done[key] = cached  # type: ignore[assignment]
                stats.conforms_reused += 1
            else:
                report(f"conform clip {index}/{len(clips)} ({Path(path).name})")
                done[key] = _conform(index, Path(path), key, work, profile, edge, memo)
                stats.conforms_encoded += 1
        else:
            stats.conforms_reused += 1
        pieces.append(done[key])
    return pieces


def _conform(index, path, key, work, profile, edge, memo) -> dict[str, Path]:
    """Encode one clip's pieces and adopt them into the memo (only once all of them exist)."""
    where = f"clip {index} ({path})"
    try:
        info = probe(path)
    except MediaError as exc:
        raise StitchError(f"stitch: cannot read {where}: {exc.message}") from exc
    frames = frames_for(info.duration, profile.fps)
    if frames < 1:
        raise StitchError(f"stitch: {where} has no video frames to show ({info.duration:.3f} s)")
    outs = {part: work / f"conform-{key}.{part}{SEGMENT_SUFFIX}" for part in conform_parts(edge)}
    try:
        argv = build_conform_command(path, outs, profile=profile, frames=frames,
                                     has_audio=info.has_audio, edge=edge)  # fmt: skip
    except ValueError:
        raise StitchError(
            f"stitch: {where} is {info.duration:.3f} s long, too short for a "
            f"{edge / profile.fps:.3f} s transition at each end: use a shorter transition"
        ) from None
    _ffmpeg(argv, f"conforming {where}")
    return {part: memo.memo_put(_conform_name(key, part), produced) for part, produced in outs.items()}


def _join_plan(clips, keys, pieces, work, profile, kind, edge, memo, stats, report) -> list[Path]:
    """The film's segments in order, encoding each window the memo lacks."""
    if not edge:
        return [p["whole"] for p in pieces]
    segments = [pieces[0]["head"], pieces[0]["body"]]
    for i in range(1, len(clips)):
        key = window_key(keys[i - 1], keys[i], kind)
        name = f"window-{key}{SEGMENT_SUFFIX}"
        window = memo.memo_get(name)
        if window is None:
            report(f"{kind} window {i}/{len(clips) - 1} (clip {i} -> clip {i + 1})")
            produced = work / name
            argv = build_window_command(pieces[i - 1]["tail"], pieces[i]["head"], produced,
                                        profile=profile, kind=kind, edge=edge)  # fmt: skip
            _ffmpeg(argv, f"encoding the {kind} from clip {i} ({clips[i - 1][1]}) "
                          f"to clip {i + 1} ({clips[i][1]})")  # fmt: skip
            window = memo.memo_put(name, produced)
            stats.windows_encoded += 1
        else:
            stats.windows_reused += 1
        segments += [window, pieces[i]["body"]]
    segments.append(pieces[-1]["tail"])
    return segments


def _conform_name(key: str, part: str) -> str:
    return f"conform-{key}.{part}{SEGMENT_SUFFIX}"


def _write_atomically(out: Path, produce: Callable[[Path], None]) -> None:
    """Run ``produce`` on a temporary file beside ``out``, then move it into place."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        produce(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _ffmpeg(argv: list[str], step: str) -> None:
    """Run ffmpeg for ``step``; a failure becomes a StitchError naming the step."""
    try:
        run_ffmpeg(argv)
    except MediaError as exc:
        raise StitchError(f"stitch: {step} failed: {exc.message}") from exc


def _encoder_id() -> str:
    """The version line of the ffmpeg that will encode, e.g. ``ffmpeg version n9.0.2-...``.

    It is part of every memo key: segments joined by stream copy must come from one encoder
    build, so a cache shared with a machine running another ffmpeg re-encodes instead of mixing.
    """
    try:
        return _version_line(ffmpeg_exe())
    except MediaError as exc:
        raise StitchError(f"stitch: {exc.message}") from exc


@functools.cache
def _version_line(exe: str) -> str:
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise MediaError(f"cannot run ffmpeg at {exe}: {exc}") from exc
    return proc.stdout.decode("utf-8", "replace").partition("\n")[0].strip()
