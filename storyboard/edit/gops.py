"""Smart cut: where a clip may be cut without re-encoding, and the copy of a run of whole GOPs.

A trimmed clip, or one with a transition or text beside it, used to be re-encoded whole. When
its clip already has the film's H.264 setting, only the frames that truly need new pictures are
encoded: the partial GOPs at the edges of a part (from its first frame to the first clean cut
point inside it, and from the last one to its end); the whole GOPs between are copied packet for
packet (``build_span_command``), as a whole clip in a film of cuts is.

A clean cut point (``ClipFacts.cuts``) is a keyframe that starts a closed GOP: an IDR picture, with
every packet before it in decode order shown before it and every packet after it shown at or
after it. An open GOP (x264's ``--open-gop``: a non-IDR I picture whose leading B-frames refer
to the GOP before) is no cut point, so a clip made that way is encoded as before. The cut points
are found with the clip's other facts, in the one demux that reads them (``clip_facts``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from storyboard.edit.clip_facts import ClipFacts
from storyboard.edit.conform import BITEXACT_ARGS, Profile, Trim, audio_chain
from storyboard.edit.pieces import Part, edges
from storyboard.edit.timeline import ClipPiece, Timeline, frames_of

__all__ = ["Span", "build_span_command", "smart_line", "split_parts", "split_span",
           "write_packets"]


@dataclass(frozen=True)
class Span:
    """Frames ``[start, end)`` of a part (in the part's piece), and how they are made: copied
    (``first`` is then the clip frame they start at) or encoded."""

    start: int
    end: int
    copied: bool = False
    first: int = 0

    @property
    def frames(self) -> int:
        return self.end - self.start


MIN_COPY = 12
"""The fewest frames worth copying: a shorter run (a clip's lone last keyframe, say) costs a segment
and a join more than encoding it saves."""


def split_span(start: int, end: int, trim: Trim, cuts: tuple[int, ...],
               frames: int) -> list[Span]:
    """Part ``[start, end)`` of a piece trimmed by ``trim`` from a clip of ``frames`` frames,
    cut into encoded edges and the run of whole GOPs between (copied), in order.

    The copied run starts at the first cut point at or after the part's first clip frame and
    ends at the last cut point (or the clip's end) at or before its last used frame; held
    frames are always encoded. One encoded span when no whole GOP fits.
    """
    first = trim.start + start
    last = trim.start + min(end, trim.used)  # one past the part's last frame taken from the clip
    ends = [at for at in (*cuts, frames) if at <= min(last, frames)]
    begin = next((at for at in cuts if at >= first), None)
    if begin is None or not ends or ends[-1] - begin < MIN_COPY:
        return [Span(start, end)]
    stop = ends[-1]
    spans = [Span(start, begin - trim.start)] if begin > first else []
    spans.append(Span(begin - trim.start, stop - trim.start, True, begin))
    if stop - trim.start < end:
        spans.append(Span(stop - trim.start, end))
    return spans


def split_parts(plan: list[Part], cuts: tuple[int, ...], frames: int) -> list[Part]:
    """``plan`` with each part that is not a window's head or tail and has no text split into
    its encoded edges and its copied run of whole GOPs (``split_span``), named ``<part>_in``,
    ``<part>_gops`` and ``<part>_out``."""
    parts = []
    for part in plan:
        spans = [] if part.texts or part.name in ("head", "tail") else split_span(
            part.start, part.end, part.trim, cuts, frames)
        if len(spans) < 2 and not any(span.copied for span in spans):
            parts.append(part)
            continue
        for span in spans:
            suffix = "gops" if span.copied else "in" if span.start == part.start else "out"
            parts.append(Part(f"{part.name}_{suffix}", span.start, span.end, part.trim,
                              first=span.first if span.copied else None))
    return parts


def write_packets(src: Path, out: Path, first: int, end: int) -> None:
    """Remux the video packets of frames ``[first, end)`` of ``src`` (presentation order) into
    ``out`` (MOV), untouched and in decode order; ``first`` and ``end`` must be cut points."""
    import av

    with av.open(os.fspath(src)) as container:
        video = container.streams.video[0]
        stamps = sorted(p.pts for p in container.demux(video) if p.size and p.pts is not None)
        low = stamps[first]
        high = stamps[end] if end < len(stamps) else None
        container.seek(0, stream=video)
        with av.open(os.fspath(out), "w", format="mov") as sink:
            stream = sink.add_stream_from_template(video)
            for packet in container.demux(video):
                if not packet.size or packet.pts is None:
                    continue
                if packet.pts >= low and (high is None or packet.pts < high):
                    packet.stream = stream
                    sink.mux(packet)


def build_span_command(video: Path, src: Path, out: Path, *, profile: Profile, span: Span,
                       clip: ClipFacts, volume: float) -> list[str]:
    """ffmpeg arguments that make the segment ``out`` of a copied run: the packets remuxed into
    ``video`` (``write_packets``), copied, and the clip's sound under them as PCM, cut to the
    run's clip frames sample for sample (``Profile.samples_at``), scaled by ``volume``."""
    trim = Trim(span.first, span.frames, 0, volume)
    chain = audio_chain(profile, trim, clip.has_audio).replace("[0:a:0]", "[1:a:0]")
    return [
        "-y", "-i", str(video), "-i", str(src), "-filter_complex", f"{chain}[a]",
        "-map", "0:v:0", "-map", "[a]", "-c:v", "copy",
        "-c:a", "pcm_s16le", "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
        "-video_track_timescale", str(profile.fps * 1000), *BITEXACT_ARGS,
        "-f", "mov", str(out),
    ]  # fmt: skip



def smart_line(what: str, plan: list[Part], timeline: Timeline, index: int, fps: int) -> str:
    """What of piece ``index`` is copied and what re-encoded, and why:
    ``"smart cut clip 3 (storm): 6.2 s copied, 0.8 s re-encoded (trim in at 1.30 s is mid-GOP)"``.
    """
    piece = timeline.pieces[index]
    assert isinstance(piece, ClipPiece)
    total = timeline.piece_frames(index, fps)
    copied = sum(part.frames for part in plan if part.first is not None)
    left, right = edges(timeline, index, fps)
    why = [f"the {timeline.joins[index - 1].kind} before it"] if left else []
    why += [f"the {timeline.joins[index].kind} after it"] if right else []
    why += [f"text {overlay.text!r}" for overlay in piece.overlays]
    why += [f"a {piece.hold:.2f} s hold"] if piece.hold else []
    for part in plan:
        if part.name.endswith("_in"):
            why.append(_mid_gop(part.start, piece, total, left, right, timeline, index, fps))
        elif part.name.endswith("_out") and min(part.end, part.trim.used) > part.start:
            why.append(_mid_gop(min(part.end, part.trim.used), piece, total, left, right,
                                timeline, index, fps))
    if not copied:
        why.append("no run of whole closed GOPs worth copying between its cuts")
    kept = ("nothing copied" if not copied else f"{copied} frame{'s' * (copied > 1)} copied"
            if copied / fps < 0.05 else f"{copied / fps:.1f} s copied")
    return f"smart cut {what}: {kept}, {(total - copied) / fps:.1f} s re-encoded ({'; '.join(why)})"


def _mid_gop(at: int, piece: ClipPiece, total: int, left: int, right: int, timeline: Timeline,
             index: int, fps: int) -> str:
    """Why a cut ``at`` a frame of the piece (of ``total``), between two keyframes, is there."""
    used = total - frames_of(piece.hold, fps)
    if at == 0:
        return f"trim in at {piece.in_:.2f} s is mid-GOP"
    if at == used and not right:
        return f"trim out at {piece.out:.2f} s is mid-GOP"
    if left and at == left:
        return f"the {timeline.joins[index - 1].kind} before it ends mid-GOP"
    if right and at == total - right:
        return f"the {timeline.joins[index].kind} after it starts mid-GOP"
    return f"the cut at {at / fps:.2f} s into it is mid-GOP"
