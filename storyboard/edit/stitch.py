"""Stitching: join conformed clips into the film, re-encoding only what a change touches.

The film is a list of segments joined by the concat demuxer with the video stream-copied::

    cut:        whole_0 | whole_1 | ... | whole_n-1
    crossfade:  head_0 | body_0 | window_0,1 | body_1 | window_1,2 | ... | body_n-1 | tail_n-1

Each clip is conformed once (``conform.py``) and each window (the tail of one clip blended with
the head of the next) is encoded once; both are memoised by content, so changing one shot
re-encodes its conform and the two windows that touch it, and copies everything else. Audio stays
PCM until the end and is encoded to AAC over the whole film, in spans at once and joined packet
for packet (``soundtrack.py``), and in a film of cuts each clip on the AAC grid lends its own
packets but for a few at each join: stream-copying AAC clips whole drifts 21 ms per join
(encoder priming), and one ``xfade`` chain over every clip takes memory that grows faster than
the clip count.

In a film of cuts, every clip that already has the film's video (size, pixel format, frame rate,
B-frames or not) and the H.264 setting most clips share, as clips from one provider do, is
copied: its packets go into the film untouched and only its audio becomes PCM. Each other clip
is encoded with x264 set to give the same parameter sets (``film_setting.py``), so one odd clip
costs one encode, and the film still holds one set. A transition's windows need exact frame cuts
inside the clips, which copying cannot make between keyframes, so films with transitions encode.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from storyboard.edit.conform import (
    BITEXACT_ARGS,
    COLOUR,
    SEGMENT_SUFFIX,
    VIDEO_CODEC_ARGS,
    ClipFacts,
    Profile,
    VideoMode,
    build_conform_command,
    build_copy_command,
    conform_key,
    conform_parts,
    frames_for,
    read_clip,
)
from storyboard.errors import MediaError, StitchError
from storyboard.edit.film_setting import VideoPlan, encode_all, plan_video
from storyboard.media import ffmpeg_exe, run_ffmpeg
from storyboard.edit.soundtrack import encode_soundtrack
from storyboard.edit.transition import Transition, build_window_command, window_key

__all__ = [
    "Memo",
    "Profile",
    "StitchStats",
    "Transition",
    "build_concat_command",
    "build_concat_list",
    "build_pcm_command",
    "build_window_command",
    "stitch",
    "window_key",
]

LOUDNORM = "loudnorm=I=-23:TP=-1:LRA=11"
"""EBU R128 programme loudness (-23 LUFS, true peak -1 dBTP), single pass, whole film."""


class Memo(Protocol):
    """A content-addressed memo of derived files (the build cache implements it)."""

    def memo_get(self, name: str) -> Path | None:
        """The cached file stored under ``name``, verified, or None."""

    def memo_put(self, name: str, produced: Path) -> Path:
        """Adopt ``produced`` under ``name`` atomically (the file is moved); return its cached path."""


@dataclass(frozen=True)
class StitchStats:
    """What a stitch encoded, copied and reused from the memo.

    A conform is counted once: encoded (video re-encoded), copied (video stream-copied, audio
    converted) or reused (found in the memo, whichever way it was made). ``conformed`` says, for
    each clip whose video was not copied, which it is and why (``"clip 4 (odd.mp4): it is
    25 frames a second ..."``).
    """

    conforms_encoded: int = 0
    conforms_reused: int = 0
    windows_encoded: int = 0
    windows_reused: int = 0
    segments: int = 0
    conforms_copied: int = 0
    conformed: tuple[str, ...] = ()


def build_concat_list(segments: Sequence[Path]) -> str:
    """The concat demuxer's script naming ``segments`` in order (absolute, quoted paths)."""
    lines = ["ffconcat version 1.0"]
    for path in segments:
        quoted = os.path.abspath(path).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def build_pcm_command(concat_list: Path, out: Path, *, profile: Profile,
                      normalize_audio: bool = False) -> list[str]:
    """ffmpeg arguments that write the film's sound, joined from the segments, as raw PCM.

    The segments' PCM is exact to the sample; loudness normalisation (``normalize_audio``)
    is the only thing that changes it, over the whole film at once.
    """
    audio_filter = []
    if normalize_audio:
        audio_filter = ["-af", f"{LOUDNORM},aresample={profile.sample_rate}"]
    return [
        "-y", "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", str(concat_list),
        "-map", "0:a:0", *audio_filter, "-c:a", "pcm_s16le", "-ar", str(profile.sample_rate),
        "-ac", str(profile.channels), "-f", "s16le", str(out),
    ]  # fmt: skip


def build_concat_command(concat_list: Path, audio: Path, out: Path) -> list[str]:
    """ffmpeg arguments that join the segments' video and the encoded ``audio`` into the MP4 ``out``.

    Both are stream-copied, packet for packet: the segments share their parameter sets, so the
    demuxer's conversion to Annex B (which leaves a copy of them in every keyframe) is off, and
    the AAC track keeps its priming (one MP4 edit list).
    """
    return [
        "-y", "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", str(concat_list),
        "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
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
    jobs: int | None = None,
) -> StitchStats:
    """Stitch ``clips`` into the film ``out``, reusing every conform and window ``memo`` holds.

    Args:
        clips: ``(sha256 of the clip's bytes, path)`` in film order.
        out: the film (MP4: H.264 + AAC), written atomically; never left partial.
        profile: the film's size, fps, pixel format and audio layout.
        transition: how clips join; see ``Transition``.
        memo: where conformed clips and windows are kept between builds.
        normalize_audio: normalise the film's loudness (EBU R128) in the final encode.
        on_step: called with a line such as ``"conform clip 2/5 (b.mp4)"`` (or ``"copy clip
            2/5 (b.mp4)"``) before each step; in a film of cuts, first with ``"re-encode clip 2
            (b.mp4): <why>"`` for each clip whose video is not copied, or once with
            ``"re-encode the video: <why>"`` when no clip's is.
        jobs: ffmpeg processes run at once where the work splits (the sound's spans); default
            the core count. The film's bytes never depend on it.

    Returns:
        How many conforms were encoded, copied or reused, and windows encoded or reused.

    Raises:
        StitchError: no clips, a clip too short for the transition, or ffmpeg failed; the message
            names the step and the clip and ends with ffmpeg's own words.
    """
    if not clips:
        raise StitchError("stitch: the film has no clips")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    edge = transition.edge_frames(profile.fps) if len(clips) > 1 else 0
    _encoder_id()  # fail early, before any work, when ffmpeg cannot run
    report = on_step or (lambda line: None)
    paths = [(sha, Path(path)) for sha, path in clips]
    facts: dict[str, ClipFacts | MediaError] = {}
    plan = encode_all(len(paths), "the film has transitions")
    if not edge:
        for sha, path in paths:
            if sha not in facts:
                facts[sha] = _read(path)
        plan = plan_video([(path.name, facts[sha]) for sha, path in paths], profile)
    with tempfile.TemporaryDirectory(prefix=".stitch-", dir=out.parent) as work_dir:
        work = Path(work_dir)
        try:
            run = _start(paths, plan, profile, transition, edge, memo, work, report, facts)
            pieces = run.conform_all()
        except _Mismatch as exc:
            plan = encode_all(len(paths), str(exc))
            run = _start(paths, plan, profile, transition, edge, memo, work, report, facts)
            pieces = run.conform_all()
        segments = run.segments(pieces)
        concat_list = work / "segments.ffconcat"
        concat_list.write_text(build_concat_list(segments), encoding="utf-8")
        run.report(f"join {len(segments)} segments into {out.name}")
        pcm, audio, film = work / "film.pcm", work / "audio.mov", work / "film.mp4"
        _ffmpeg(build_pcm_command(concat_list, pcm, profile=profile,
                                  normalize_audio=normalize_audio),
                f"joining the sound of {len(segments)} segments")
        own_sound = [] if edge or normalize_audio else _clip_sounds(paths, facts, run.modes, profile)
        encode_soundtrack(pcm, audio, profile=profile, work=work, run=_ffmpeg, jobs=jobs,
                          clips=own_sound)
        _ffmpeg(build_concat_command(concat_list, audio, film),
                f"joining {len(segments)} segments into {out}")
        _move_into_place(film, out)
    conformed = tuple(f"clip {i} ({path.name}): {why}"
                      for i, ((_, path), why) in enumerate(zip(paths, plan.reasons), 1)
                      if why is not None and edge == 0)
    return StitchStats(run.conforms_encoded, run.conforms_reused, run.windows_encoded,
                       run.windows_reused, len(segments), run.conforms_copied, conformed)


def _clip_sounds(paths: list[tuple[str, Path]], facts: dict[str, ClipFacts | MediaError],
                 modes: list[VideoMode], profile: Profile) -> list[tuple[Path, int, int]]:
    """Each clip of a film of cuts, the film sample where its sound starts and its length there.

    A cut film's sound is each clip's decoded sound, cut or padded to its picture, so a clip's
    own AAC packets may stand in for most of it (``soundtrack.encode_soundtrack``).
    """
    sounds, frame = [], 0
    for (sha, path), mode in zip(paths, modes, strict=True):
        info = facts[sha]
        if isinstance(info, MediaError):
            return sounds
        frames = info.frames if mode == "copy" else frames_for(info.duration, profile.fps)
        start = profile.samples_at(frame)
        frame += frames
        if info.has_audio:
            sounds.append((path, start, profile.samples_at(frame) - start))
    return sounds


class _Mismatch(Exception):
    """A clip encoded to match the film's setting still has other parameter sets."""


def _start(paths: list[tuple[str, Path]], plan: VideoPlan, profile: Profile,
           transition: Transition, edge: int, memo: Memo, work: Path,
           report: Callable[[str], None], facts: dict[str, ClipFacts | MediaError]) -> _Run:
    """A run of ``plan``, after saying which clips it re-encodes and why."""
    if plan.why_encode is not None:
        if edge == 0:
            report(f"re-encode the video: {plan.why_encode}")
    else:
        for index, ((_, path), why) in enumerate(zip(paths, plan.reasons, strict=True), 1):
            if why is not None:
                report(f"re-encode clip {index} ({path.name}): {why}")
    video = plan.match_args or VIDEO_CODEC_ARGS
    keys = [conform_key(sha, profile, edge, encoder=_encoder_id(), mode=mode,
                        video_args=video if mode == "match" else VIDEO_CODEC_ARGS,
                        colour=colour)
            for (sha, _), mode, colour in zip(paths, plan.modes, plan.colours or
                                               [COLOUR] * len(paths), strict=True)]
    return _Run(clips=paths, keys=keys, profile=profile, kind=transition.kind, edge=edge,
                memo=memo, work=work, report=report, modes=list(plan.modes), facts=facts,
                match_args=plan.match_args, colours=list(plan.colours),
                setting=plan.setting)


def _read(path: Path) -> ClipFacts | MediaError:
    """The clip's facts, or the error reading it (raised when the clip's turn to conform comes)."""
    try:
        return read_clip(path)
    except MediaError as exc:
        return exc


Pieces = dict[str, Path]
"""A conformed clip: piece name (``whole`` or ``head``/``body``/``tail``) -> memoised file."""


@dataclass
class _Run:
    """One stitch in progress: what it joins, where it works, and what it has encoded."""

    clips: list[tuple[str, Path]]
    keys: list[str]
    profile: Profile
    kind: str
    edge: int
    memo: Memo
    work: Path
    report: Callable[[str], None]
    modes: list[VideoMode]
    facts: dict[str, ClipFacts | MediaError] = field(default_factory=dict)
    match_args: tuple[str, ...] = ()
    colours: list[tuple[str, str]] = field(default_factory=list)
    setting: bytes = b""
    conforms_encoded: int = 0
    conforms_copied: int = 0
    conforms_reused: int = 0
    windows_encoded: int = 0
    windows_reused: int = 0

    def conform_all(self) -> list[Pieces]:
        """Each clip's pieces, in film order, conforming each distinct clip the memo lacks."""
        first: dict[str, int] = {}
        for index, key in enumerate(self.keys):
            first.setdefault(key, index)
        found = {index: self.memoised(index) for index in first.values()}
        done: dict[str, Pieces] = {}
        pool = ThreadPoolExecutor(max_workers=2)
        try:
            ahead = self.encode_ahead(pool, [i for i, pieces in found.items()
                                             if pieces is None and self.modes[i] != "copy"])
            for index, key in enumerate(self.keys):
                if key not in done:
                    self.conform_one(index, key, done, ahead, found[index])
                else:
                    self.conforms_reused += 1
        finally:
            pool.shutdown(cancel_futures=True)
        return [done[key] for key in self.keys]

    def memoised(self, index: int) -> Pieces | None:
        """Clip ``index``'s pieces from the memo, or None when any is missing."""
        pieces = {part: self.memo.memo_get(self.name(index, part)) for part in conform_parts(self.edge)}
        return pieces if all(pieces.values()) else None  # type: ignore[return-value]

    def encode_ahead(self, pool: ThreadPoolExecutor, todo: list[int]) -> dict[int, Future[Pieces]]:
        """Start encoding clips ``todo`` (those needing x264), two at a time, as the copies go on.

        One x264 encode of a clip with B-frames keeps about one core busy, so two at once, and
        the copies meanwhile, finish sooner; the clips are still announced in film order. None
        on a single core.
        """
        if (os.cpu_count() or 1) < 2:
            return {}
        return {i: pool.submit(self.conform, i, announce=False) for i in todo}

    def conform_one(self, index: int, key: str, done: dict[str, Pieces],
                    ahead: dict[int, Future[Pieces]], found: Pieces | None) -> None:
        """Put clip ``index``'s pieces in ``done``: from the memo, encoded ahead, or made now."""
        if found is not None:
            done[key] = found
            self.conforms_reused += 1
        else:
            if index in ahead:
                self.announce(index)
            done[key] = ahead[index].result() if index in ahead else self.conform(index)
            if self.modes[index] == "copy":
                self.conforms_copied += 1
            else:
                self.conforms_encoded += 1
        if self.modes[index] == "match":
            self.check_match(index, done[key]["whole"])

    def name(self, index: int, part: str) -> str:
        """Memo name of a piece of clip ``index``; it says how the video was made."""
        return f"conform-{self.modes[index]}-{self.keys[index]}.{part}{SEGMENT_SUFFIX}"

    def check_match(self, index: int, whole: Path) -> None:
        """Raise ``_Mismatch`` when clip ``index``'s matched conform has other parameter sets."""
        if _extradata(whole) != self.setting:
            raise _Mismatch(f"clip {index + 1} ({self.clips[index][1].name}) encoded to match "
                            "the other clips' H.264 setting still has other parameter sets")

    def announce(self, index: int) -> None:
        """Say that clip ``index`` is copied or conformed now."""
        verb = "copy" if self.modes[index] == "copy" else "conform"
        self.report(f"{verb} clip {index + 1}/{len(self.clips)} ({self.clips[index][1].name})")

    def conform(self, index: int, announce: bool = True) -> Pieces:
        """Make one clip's pieces, then adopt them into the memo (all of them, or none)."""
        (sha, path), mode, profile = self.clips[index], self.modes[index], self.profile
        where = f"clip {index + 1} ({path})"
        if announce:
            self.announce(index)
        info = self.facts.get(sha) or _read(path)
        if isinstance(info, MediaError):
            raise StitchError(f"stitch: cannot read {where}: {info.message}") from info
        frames = info.frames if mode == "copy" else frames_for(info.duration, profile.fps)
        if frames < 1:
            raise StitchError(f"stitch: {where} has no video frames ({info.duration:.3f} s)")
        outs = {part: self.work / self.name(index, part) for part in conform_parts(self.edge)}
        if mode == "copy":
            argv = build_copy_command(path, outs["whole"], profile=profile, frames=frames,
                                      has_audio=info.has_audio)
            _ffmpeg(argv, f"conforming {where}")
            return {"whole": self.memo.memo_put(self.name(index, "whole"), outs["whole"])}
        try:
            match = mode == "match"
            argv = build_conform_command(
                path, outs, profile=profile, frames=frames, has_audio=info.has_audio,
                edge=self.edge, video_args=self.match_args if match else VIDEO_CODEC_ARGS,
                colour=self.colours[index] if match else COLOUR)
        except ValueError:
            raise StitchError(
                f"stitch: {where} is {info.duration:.3f} s long, too short for a "
                f"{self.edge / profile.fps:.3f} s transition at each end: use a shorter one"
            ) from None
        _ffmpeg(argv, f"conforming {where}")
        return {part: self.memo.memo_put(self.name(index, part), produced)
                for part, produced in outs.items()}

    def segments(self, pieces: list[Pieces]) -> list[Path]:
        """The film's segments in order, encoding each window the memo lacks."""
        if not self.edge:
            return [p["whole"] for p in pieces]
        segments = [pieces[0]["head"], pieces[0]["body"]]
        for i in range(1, len(pieces)):
            name = f"window-{window_key(self.keys[i - 1], self.keys[i], self.kind)}{SEGMENT_SUFFIX}"
            window = self.memo.memo_get(name)
            if window is None:
                window = self.window(i, pieces[i - 1]["tail"], pieces[i]["head"], name)
                self.windows_encoded += 1
            else:
                self.windows_reused += 1
            segments += [window, pieces[i]["body"]]
        segments.append(pieces[-1]["tail"])
        return segments

    def window(self, i: int, tail: Path, head: Path, name: str) -> Path:
        """Encode the window from clip ``i`` to clip ``i + 1`` (1-based) and memoise it."""
        self.report(f"{self.kind} window {i}/{len(self.clips) - 1} (clip {i} -> clip {i + 1})")
        produced = self.work / name
        argv = build_window_command(tail, head, produced, profile=self.profile, kind=self.kind,
                                    edge=self.edge)
        _ffmpeg(argv, f"encoding the {self.kind} from clip {i} ({self.clips[i - 1][1]}) "
                      f"to clip {i + 1} ({self.clips[i][1]})")
        return self.memo.memo_put(name, produced)


def _extradata(path: Path) -> bytes:
    """The H.264 parameter sets (avcC record) of a conformed segment."""
    import av  # slow to import; only stitching needs it

    with av.open(str(path)) as container:
        return bytes(container.streams.video[0].codec_context.extradata or b"")


def _move_into_place(produced: Path, out: Path) -> None:
    """Flush ``produced`` to disk and rename it over ``out`` (same folder tree, so atomic)."""
    with open(produced, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(produced, out)


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
