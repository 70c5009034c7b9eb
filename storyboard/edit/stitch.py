"""Stitching: render the timeline into the film, re-encoding only what a change touches.

The film is a list of segments joined by the concat demuxer with the video stream-copied::

    cuts:        whole_0 | whole_1 | title_2 | ... | whole_n-1
    transitions: body_0 | window_0,1 | body_1 | body_1+text | window_1,2 | ... | body_n-1

Each piece (a trimmed clip, a title card) is cut into parts (``pieces.py``), each memoised by
what shapes it, and each window (the tail of one piece blended with the head of the next, as its
join says) is encoded once under the keys of the parts it joins (``render.py``): changing one
clip's trim re-encodes its changed parts and the windows beside them, and copies everything else. Audio stays
PCM until the end and is encoded to AAC over the whole film, in spans at once and joined packet
for packet (``soundtrack.py``), and in a film of cuts each clip on the AAC grid lends its own
packets but for a few at each join: stream-copying AAC clips whole drifts 21 ms per join
(encoder priming), and one ``xfade`` chain over every clip takes memory that grows faster than
the clip count.

In a film of cuts, every clip that already has the film's video (size, pixel format, frame rate,
B-frames or not) and the H.264 setting most clips share, as clips from one provider do, is
copied: its packets go into the film untouched and only its audio becomes PCM. Each other clip
is encoded with x264 set to give the same parameter sets (``film_setting.py``), so one odd clip
costs one encode, and the film still holds one set. A trimmed, held or titled clip, or one with a
transition beside it, needs exact frame cuts inside it, which copying cannot make between
keyframes: when its clip has the film's setting it is smart-cut (``gops.py``: the whole closed
GOPs inside each part copied, the partial GOPs at the edges encoded), else it is encoded (to the
copied clips' setting when there are any). The sound is PCM
until the end: music and voice-over are mixed into it (``mix.py``) and it is encoded once; soft
subtitles become a ``mov_text`` stream.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from storyboard.edit.conform import BITEXACT_ARGS, Profile
from storyboard.edit.clip_facts import ClipFacts
from storyboard.edit.facts_memo import read_facts
from storyboard.edit.pieces import FilmPlan, plan_film, untouched
from storyboard.edit.render import Memo, Mismatch, Render
from storyboard.edit.soundtrack import encode_soundtrack
from storyboard.edit.subtitles import write_srt
from storyboard.edit.timeline import ClipPiece, Join, Timeline
from storyboard.edit.transition import Transition, build_window_command, window_key
from storyboard.errors import MediaError, StitchError
from storyboard.media import ffmpeg_exe, run_ffmpeg

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


@dataclass(frozen=True)
class StitchStats:
    """What a stitch encoded, copied and reused from the memo.

    A conform is counted once: encoded (video re-encoded), copied (video stream-copied, audio
    converted) or reused (found in the memo, whichever way it was made): a conform counts as
    encoded when any of its parts was. ``parts_*`` count the parts themselves (a clip's head,
    body pieces and tail), ``spans_*`` the runs of whole GOPs a smart cut copied out of a trimmed
    clip (``gops.py``), ``titles_*`` the title cards. ``frames_copied`` and ``frames_encoded``
    say where the film's frames came from (its source clips' packets, or x264), memo or not:
    they add up to the film's frames. ``conformed`` says, for each whole clip
    in a film of cuts whose video was not copied, why (``"clip 4 (odd.mp4): it is 25 frames a
    second ..."``).
    """

    conforms_encoded: int = 0
    conforms_reused: int = 0
    windows_encoded: int = 0
    windows_reused: int = 0
    segments: int = 0
    conforms_copied: int = 0
    conformed: tuple[str, ...] = ()
    titles_encoded: int = 0
    titles_reused: int = 0
    parts_encoded: int = 0
    parts_reused: int = 0
    spans_copied: int = 0
    spans_reused: int = 0
    frames_copied: int = 0
    frames_encoded: int = 0


def build_concat_list(segments: Sequence[Path]) -> str:
    """The concat demuxer's script naming ``segments`` in order (absolute, quoted paths)."""
    lines = ["ffconcat version 1.0"]
    for path in segments:
        quoted = os.path.abspath(path).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def build_pcm_command(concat_list: Path, out: Path, *, profile: Profile,
                      normalize_audio: bool = False, loudness: float | None = None) -> list[str]:
    """ffmpeg arguments that write the film's sound, joined from the segments, as raw PCM.

    The segments' PCM is exact to the sample; loudness normalisation (``normalize_audio``, to
    -23 LUFS, or to ``loudness``) is the only thing that changes it, over the whole film at once.
    """
    audio_filter = []
    if normalize_audio or loudness is not None:
        target = LOUDNORM if loudness is None else f"loudnorm=I={loudness:g}:TP=-1:LRA=11"
        audio_filter = ["-af", f"{target},aresample={profile.sample_rate}"]
    return [
        "-y", "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", str(concat_list),
        "-map", "0:a:0", *audio_filter, "-c:a", "pcm_s16le", "-ar", str(profile.sample_rate),
        "-ac", str(profile.channels), "-f", "s16le", str(out),
    ]  # fmt: skip


def build_concat_command(concat_list: Path, audio: Path, out: Path,
                         subtitles: Path | None = None) -> list[str]:
    """ffmpeg arguments that join the segments' video and the encoded ``audio`` into the MP4 ``out``.

    Both are stream-copied, packet for packet: the segments share their parameter sets, so the
    demuxer's conversion to Annex B (which leaves a copy of them in every keyframe) is off, and
    the AAC track keeps its priming (one MP4 edit list). ``subtitles`` (an SRT file) becomes a
    soft ``mov_text`` track.
    """
    soft = [] if subtitles is None else ["-i", str(subtitles)]
    streams = [] if subtitles is None else ["-map", "2:s:0", "-c:s", "mov_text"]
    return [
        "-y", "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", str(concat_list),
        "-i", str(audio), *soft, "-map", "0:v:0", "-map", "1:a:0", *streams,
        "-c:v", "copy", "-c:a", "copy",
        *BITEXACT_ARGS, "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip


def stitch(
    timeline: Timeline | Sequence[tuple[str, Path]],
    out: Path,
    *,
    profile: Profile,
    memo: Memo,
    transition: Transition | None = None,
    normalize_audio: bool = False,
    on_step: Callable[[str], None] | None = None,
    jobs: int | None = None,
) -> StitchStats:
    """Render ``timeline`` into the film ``out``, reusing every part and window ``memo`` holds.

    Args:
        timeline: the edit (``timeline.Timeline``); or, the short form, ``(sha256 of the clip's
            bytes, path)`` of whole clips in film order, joined by ``transition``.
        out: the film (MP4: H.264 + AAC, and a ``mov_text`` track for soft subtitles), written
            atomically; never left partial.
        profile: the film's size, fps, pixel format and audio layout.
        memo: where conformed parts, title cards and windows are kept between builds.
        transition: the short form's join between every two clips (default a cut).
        normalize_audio: the short form's loudness normalisation (EBU R128, -23 LUFS).
        on_step: called with a line naming each encode before it runs: ``"trim clip 3 (storm)
            7.00-12.50 s"``, ``"conform clip 2/5 (b)"``, ``"copy clip 2/5 (b)"``, ``"title
            'The Keeper'"``, ``"wipeleft window 2/4 (clip 2 -> clip 3)"``; first ``"re-encode
            clip 2 (b.mp4): <why>"`` for each whole clip whose video is not copied, or once
            ``"re-encode the video: <why>"`` when none is; before a smart-cut clip's parts are
            made, ``"smart cut clip 3 (storm): 6.2 s copied, 0.8 s re-encoded (trim in at 1.30 s
            is mid-GOP)"``, and ``"clip 4 (odd.mp4): no smart cut: <why>"`` for a clip that
            could have been.
        jobs: ffmpeg processes (or threads) run at once where the work splits (the sound's
            spans, reading the clips' facts); default the core count. The film's bytes never
            depend on it.

    Returns:
        How many conforms, parts, titles and windows were encoded, copied or reused.

    Raises:
        StitchError: no clips, a piece too short for its transitions, or ffmpeg failed; the
            message names the step and the clip and ends with ffmpeg's own words.
    """
    clips = None if isinstance(timeline, Timeline) else [(sha, Path(p)) for sha, p in timeline]
    if not (timeline.pieces if clips is None else clips):  # type: ignore[union-attr]
        raise StitchError("stitch: the film has no clips")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    encoder = _encoder_id()  # fail early, before any work, when ffmpeg cannot run
    report = on_step or (lambda line: None)
    with tempfile.TemporaryDirectory(prefix=".stitch-", dir=out.parent) as work_dir:
        work = Path(work_dir)
        if clips is not None:  # the short form: its clips' lengths come from their facts
            facts = _read_facts(clips, memo, work, jobs)
            timeline = _short_form(clips, facts, transition or Transition(), normalize_audio)
        else:
            facts = _read_facts([(piece.sha, piece.path) for piece in timeline.pieces
                                 if isinstance(piece, ClipPiece)], memo, work, jobs)
        plan = plan_film(timeline, facts, profile)
        try:
            render = _render(timeline, plan, profile, memo, work, report, facts, encoder)
            segments = render.segments()
        except Mismatch as exc:
            plan = plan_film(timeline, facts, profile, encode=str(exc))
            render = _render(timeline, plan, profile, memo, work, report, facts, encoder)
            segments = render.segments()
        concat_list = work / "segments.ffconcat"
        concat_list.write_text(build_concat_list(segments), encoding="utf-8")
        report(f"join {len(segments)} segments into {out.name}")
        pcm, audio, film = work / "film.pcm", work / "audio.mov", work / "film.mp4"
        mixed = _mix_step(timeline)
        loudness = None if mixed else timeline.loudness
        if loudness is not None or not _join_pcm(segments, pcm, profile):
            _ffmpeg(build_pcm_command(concat_list, pcm, profile=profile, loudness=loudness),
                    f"joining the sound of {len(segments)} segments")
        if mixed:
            what = [f"{len(timeline.sounds)} sound{'s' * (len(timeline.sounds) != 1)} placed"]
            if timeline.loudness is not None:
                what.append(f"loudness {timeline.loudness:g} LUFS")
            report(f"mix the sound ({', '.join(what[not timeline.sounds:])})")
            pcm = mixed(pcm, timeline, profile=profile, work=work, run=_ffmpeg)
        plain_sound = not (timeline.sounds or timeline.loudness is not None)
        own_sound = _clip_sounds(timeline, facts, plan, profile) if plain_sound else []
        encode_soundtrack(pcm, audio, profile=profile, work=work, run=_ffmpeg, jobs=jobs,
                          clips=own_sound)
        soft = None
        if timeline.subtitles is not None and not timeline.subtitles.burn:
            soft = work / "subtitles.srt"
            write_srt(timeline.subtitles.cues, soft)
        _ffmpeg(build_concat_command(concat_list, audio, film, soft),
                f"joining {len(segments)} segments into {out}")
        _move_into_place(film, out)
    return StitchStats(**render.counts, segments=len(segments), conformed=tuple(plan.reasons))


def _read_facts(clips: Sequence[tuple[str, Path]], memo: Memo, work: Path,
                jobs: int | None) -> dict[str, ClipFacts | MediaError]:
    """Each clip's facts (``facts_memo.read_facts``) by its sha256, read by a few threads at once:
    a clip not in the memo is demuxed whole, and the demuxing lets go of the interpreter (20 clips
    of 8 s at 720p: 0.24 s one after another, 0.15 s on two threads)."""
    unique: dict[str, Path] = {}
    for sha, path in clips:
        unique.setdefault(sha, path)
    workers = max(1, min(len(unique), jobs or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = pool.map(lambda item: read_facts(item[1], item[0], memo, work), unique.items())
        return dict(zip(unique, found, strict=True))


def _short_form(clips: list[tuple[str, Path]], facts: dict[str, ClipFacts | MediaError],
                transition: Transition, normalize_audio: bool) -> Timeline:
    """The timeline of whole clips joined by one transition (``stitch``'s short form)."""
    pieces = []
    for sha, path in clips:
        info = facts[sha]
        seconds = info.duration if isinstance(info, ClipFacts) else 0.0
        pieces.append(ClipPiece(shot=Path(path).name, sha=sha, path=Path(path), in_=0.0,
                                out=seconds))
    join = Join(transition.kind, transition.duration)
    return Timeline(tuple(pieces), tuple(join for _ in pieces[1:]),
                    loudness=-23.0 if normalize_audio else None)


def _render(timeline: Timeline, plan: FilmPlan, profile: Profile, memo: Memo, work: Path,
            report: Callable[[str], None], facts: dict[str, ClipFacts | MediaError],
            encoder: str) -> Render:
    """A render of ``plan``, after saying which clips it re-encodes and why."""
    for line in plan.lines:
        report(line)
    return Render(timeline=timeline, profile=profile, memo=memo, work=work, report=report,
                  run=_ffmpeg, modes=list(plan.modes), setting=plan.setting, facts=facts,
                  encoder=encoder, smart=plan.smart)


def _mix_step(timeline: Timeline) -> Callable[..., Path] | None:
    """The sound mix (``mix.mix_sound``) when the film has music, voice-over or a loudness target.

    Without the mix module, a loudness target is met by ``loudnorm`` over the joined sound.
    """
    if not timeline.sounds and timeline.loudness is None:
        return None
    try:
        from storyboard.edit.mix import mix_sound
    except ImportError:
        if timeline.sounds:
            raise StitchError("stitch: the film has music or voice-over, and this storyboard "
                              "has no sound mixer (storyboard.edit.mix)") from None
        return None
    return mix_sound


def _clip_sounds(timeline: Timeline, facts: dict[str, ClipFacts | MediaError], plan: FilmPlan,
                 profile: Profile) -> list[tuple[Path, int, int, ClipFacts]]:
    """Each whole clip with cuts on both sides at full volume (every copied clip, and a clip
    conformed whole), the film sample where its sound starts, its length and the clip's facts.

    Such a clip's sound in the film is its own decoded sound, cut or padded to its picture
    (the copy and the conform make it alike: ``conform.audio_chain`` from its first sample), so
    its own AAC packets may stand in for most of it (``soundtrack.encode_soundtrack``).
    """
    sounds = []
    fps = profile.fps
    for index, (piece, start) in enumerate(zip(timeline.pieces, timeline.starts(fps))):
        info = facts.get(piece.sha) if isinstance(piece, ClipPiece) else None
        if (plan.modes[index] is None or not isinstance(info, ClipFacts) or not info.has_audio
                or piece.volume != 1  # type: ignore[union-attr]
                or not untouched(timeline, index, info, fps)):
            continue
        first = profile.samples_at(start)
        sounds.append((piece.path, first,  # type: ignore[union-attr]
                       profile.samples_at(start + timeline.piece_frames(index, fps)) - first,
                       info))
    return sounds


def _join_pcm(segments: list[Path], out: Path, profile: Profile) -> bool:
    """Write the segments' PCM one after another into ``out`` (raw s16le), as the concat
    demuxer's ffmpeg run does (``build_pcm_command`` without loudness), without the run or the
    video read along; False (``out`` to be rewritten) if a segment's sound is not the film's
    PCM from time 0."""
    import av  # slow to import; only stitching needs it

    try:
        with open(out, "wb") as sink:
            for path in segments:
                with av.open(os.fspath(path)) as container:
                    sound = container.streams.audio[0] if container.streams.audio else None
                    if (sound is None or sound.codec_context.name != "pcm_s16le"
                            or sound.rate != profile.sample_rate
                            or sound.channels != profile.channels or sound.start_time):
                        return False
                    for packet in container.demux(sound):
                        if packet.size:
                            sink.write(bytes(packet))
    except (av.FFmpegError, ValueError):
        return False
    except OSError as exc:
        raise StitchError(f"stitch: joining the sound of {len(segments)} segments failed: "
                          f"{exc}") from exc
    return True


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
