"""The film's soundtrack: its PCM encoded to AAC in spans at once, joined packet for packet.

ffmpeg's AAC encoder is single-threaded, and on a film whose video is copied it is most of the
stitch. So the PCM is cut into spans of ``SPAN_FRAMES`` AAC frames (1024 samples each), the spans
are encoded by as many ffmpeg runs as there are cores (each span an input and an output of its
own, so a span's bytes never depend on its company), and the spans' packets are joined into one stream
that has exactly the packets' places and count of one encode of the whole::

    film samples   0 ........ B1 ........ B2 ........ T
    span 0 reads   [0 ........ B1 + POST)
    span 1 reads         [B1 - PRE ........ B2 + POST)
    span 2 reads                     [B2 - PRE ......... T)
    kept packets   priming, 0 .. B1 | B1 .. B2 | B2 .. end

An AAC packet decodes into 1024 samples by overlapping its window with the previous packet's, so
a packet is only right when its encoder saw the signal on both sides of it: each span encodes
``PRE`` samples before its first kept packet and ``POST`` after its last, and those extra packets
are dropped. The join keeps every packet's position, so timing is exact (no gap, no drift, the
same sample count); the samples near a seam are not bit-identical to one encode's (each encoder's
rate control starts afresh) but are an encode of the same signal. The span length depends only on
the film's length, never on the machine, so the same film always gives the same bytes.

A clip's sound in a film of cuts is the clip's own decoded AAC, so where a clip starts on the
film's 1024-sample grid (an 8 s clip at 48 kHz is 375 AAC frames, so a film of them always does)
and its AAC is configured as the spans' encoder, its own packets are copied, but for ``GUARD``
samples at each end, which the spans encode with the neighbour's sound around them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from storyboard.edit.clip_facts import AAC_FRAME
from storyboard.edit.conform import BITEXACT_ARGS, ClipFacts, Profile
from storyboard.errors import StitchError

SPAN_FRAMES = 512
"""AAC frames per span: about 11 s at 48 kHz, so a 160 s film has 15 spans for the cores to share."""

PRE = 4 * AAC_FRAME
"""Samples each span encodes before its first kept packet, so that packet overlaps real signal."""

POST = 4 * AAC_FRAME
"""Samples each span encodes after its last kept packet (the window and block-switch look-ahead)."""

AAC_BITRATE_PER_CHANNEL = 96_000


GUARD = 2 * AAC_FRAME
"""Samples re-encoded inside each end of a clip whose own AAC packets are copied: the packets at
a join overlap the neighbour's signal, which the clip's encoder never saw."""


@dataclass(frozen=True)
class Span:
    """One piece of the track: packets that decode to film samples ``[keep_from, keep_to)``
    (``keep_to`` None: to the end, flush included; ``keep_from`` -1024 keeps the priming packet).

    An encoded span (``source`` None) reads PCM samples ``[read_from, read_to)``; a borrowed one
    copies the packets of clip ``source``, whose sound starts at film sample ``read_from``.
    Either way packet ``m`` decodes to film samples from ``read_from - 1024 + 1024 m``.
    """

    read_from: int
    read_to: int
    keep_from: int
    keep_to: int | None
    source: int | None = None


def plan_spans(total: int, borrowed: Sequence[tuple[int, int]] = ()) -> list[Span]:
    """The pieces of a track of ``total`` samples, in order.

    Args:
        total: the film's samples.
        borrowed: for each clip whose own packets may be copied, the film sample where its
            sound starts (a multiple of 1024) and how many of its samples the film uses.

    Each borrowed clip gives its packets but ``GUARD`` samples at either end; everything else
    is encoded in spans of at most ``SPAN_FRAMES`` AAC frames.
    """
    inner = [(start + GUARD, (start + length) // AAC_FRAME * AAC_FRAME - GUARD, start, index)
             for index, (start, length) in enumerate(borrowed)]
    inner = [piece for piece in inner if piece[1] - piece[0] >= AAC_FRAME]
    spans: list[Span] = []
    cursor = 0
    for first, end, start, index in [*inner, (total, total, total, None)]:
        edges = list(range(cursor, first, SPAN_FRAMES * AAC_FRAME))
        for at, nxt in zip(edges, [*edges[1:], first], strict=True):
            last = index is None and nxt == first
            spans.append(Span(
                read_from=max(0, at - PRE), read_to=total if last else min(total, nxt + POST),
                keep_from=at if at else -AAC_FRAME, keep_to=None if last else nxt,
            ))
        if index is not None:
            spans.append(Span(start, start, first, end, source=index))
        cursor = end
    return spans


def build_span_command(pcm: Path, span: Span, out: Path, profile: Profile) -> list[str]:
    """ffmpeg arguments that encode one span of the raw PCM file ``pcm`` to AAC in MOV ``out``."""
    return build_spans_command(pcm, [(span, out)], profile)


def build_spans_command(pcm: Path, spans: Sequence[tuple[Span, Path]],
                        profile: Profile) -> list[str]:
    """ffmpeg arguments that encode several spans of ``pcm``, each to its own MOV, in one run.

    Each span is an input of its own and an output of its own, so its packets are the very
    bytes a run of its own gives; one run saves a process start and probe per span.
    """
    frame_bytes = 2 * profile.channels
    argv = ["-y"]
    for span, _ in spans:
        argv += ["-f", "s16le", "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
                 "-skip_initial_bytes", str(span.read_from * frame_bytes), "-i", str(pcm)]
    for number, (span, out) in enumerate(spans):
        argv += [
            "-map", f"{number}:a:0", "-af", f"atrim=end_sample={span.read_to - span.read_from}",
            "-c:a", "aac", "-b:a", str(AAC_BITRATE_PER_CHANNEL * profile.channels),
            *BITEXACT_ARGS, "-f", "mov", str(out),
        ]  # fmt: skip
    return argv


def encode_soundtrack(
    pcm: Path,
    out: Path,
    *,
    profile: Profile,
    work: Path,
    run: Callable[[list[str], str], None],
    jobs: int | None = None,
    clips: Sequence[tuple[Path, int, int, ClipFacts]] = (),
) -> int:
    """Encode the raw PCM file ``pcm`` (s16le, the profile's layout) to the AAC track ``out``.

    Args:
        pcm: the whole film's sound, interleaved signed 16-bit samples.
        out: a MOV holding one AAC stream, with the priming an encode of the whole would have.
        profile: the film's sample rate and channels.
        work: where the spans' files go.
        run: runs one ffmpeg command (arguments, description of the step), raising on failure.
        jobs: ffmpeg runs sharing the spans, at once; default the machine's core count. The
            bytes never depend on it.
        clips: ``(clip, film sample where its sound starts, samples the film uses, its facts)``
            for clips whose sound is in ``pcm`` exactly as they decode: the AAC packets of those
            that start on the 1024-sample grid, in the film's format and from an encoder
            configured as the spans' are copied instead of encoded again (see ``GUARD``).

    Returns:
        The number of spans.
    """
    total = pcm.stat().st_size // (2 * profile.channels)
    borrowed: list[tuple[Path, int, int]] = []
    if any(start % AAC_FRAME == 0 for _, start, _, _ in clips):
        config = _encoder_config(profile, work, run)
        for path, start, used, facts in clips:
            length = _borrowable(facts, profile, config) if start % AAC_FRAME == 0 else None
            if length:
                borrowed.append((path, start, min(used, length)))
    spans = plan_spans(total, [(start, used) for _, start, used in borrowed])
    outs = [work / f"span{index:04d}.mov" if span.source is None else borrowed[span.source][0]
            for index, span in enumerate(spans)]
    encoded = [index for index, span in enumerate(spans) if span.source is None]
    workers = max(1, jobs or os.cpu_count() or 1)
    batches = [encoded[first::workers] for first in range(min(workers, len(encoded)))]

    def encode(batch: list[int]) -> None:
        run(build_spans_command(pcm, [(spans[i], outs[i]) for i in batch], profile),
            f"encoding the sound, span{'s' * (len(batch) > 1)} "
            f"{', '.join(str(i + 1) for i in batch)} of {len(spans)}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(encode, batches))
    join_spans(list(zip(spans, outs, strict=True)), out)
    return len(encoded)


def _encoder_config(profile: Profile, work: Path,
                    run: Callable[[list[str], str], None]) -> bytes:
    """The AudioSpecificConfig the spans' encoder writes, from encoding one frame of silence."""
    import av  # slow to import; only stitching needs it

    silence, probe = work / "silence.pcm", work / "silence.mov"
    silence.write_bytes(bytes(2 * profile.channels * AAC_FRAME))
    run(build_span_command(silence, Span(0, AAC_FRAME, -AAC_FRAME, None), probe, profile),
        "probing the sound encoder")
    with av.open(os.fspath(probe)) as container:
        return bytes(container.streams.audio[0].codec_context.extradata or b"")


def _borrowable(facts: ClipFacts, profile: Profile, config: bytes) -> int | None:
    """How many samples of the clip's AAC packets can be copied into the film, or None.

    They can when the clip's sound is AAC configured as the spans' encoder is (so one sample
    entry describes both), in the film's rate and channels, and its packets are 1024 samples
    each from one frame of priming on (``ClipFacts.aac_run``, as ffmpeg's encoder makes them).
    """
    if facts.sound != ("aac", profile.sample_rate, profile.channels) or facts.sound_config != config:
        return None
    return facts.aac_run or None


def join_spans(spans: list[tuple[Span, Path]], out: Path) -> None:
    """Write the kept packets of each span (encoded or borrowed), in order, as one AAC stream.

    A span's packet ``m`` decodes to film samples starting at ``read_from - 1024 + 1024 m``
    (the encoder's priming delay); that position decides whether the packet is kept, and the
    packets keep their sizes, bytes and durations.
    """
    import av  # slow to import; only stitching needs it

    with av.open(os.fspath(out), "w", format="mov") as output:
        target = None
        for span, path in spans:
            with av.open(os.fspath(path)) as source:
                stream = source.streams.audio[0]
                if target is None:  # PyAV 14 renamed add_stream(template=...)
                    add = getattr(output, "add_stream_from_template", None)
                    target = add(stream) if add else output.add_stream(template=stream)
                    config = bytes(stream.codec_context.extradata or b"")
                if config != bytes(stream.codec_context.extradata or b""):
                    raise StitchError(f"stitch: the sound of {path.name} is configured unlike "
                                      "the film's AAC track")
                samples, kept = Fraction(1, stream.sample_rate), 0
                base = stream.time_base / samples  # durations from the stream's ticks to samples
                num, den = base.numerator, base.denominator
                for index, packet in enumerate(p for p in source.demux(stream) if p.size):
                    at = span.read_from - AAC_FRAME + index * AAC_FRAME
                    if at < span.keep_from or (span.keep_to is not None and at >= span.keep_to):
                        continue
                    kept += 1
                    duration = packet.duration * num // den
                    packet.time_base = samples
                    packet.pts = packet.dts = at
                    packet.duration = duration
                    packet.stream = target
                    output.mux(packet)
            if span.keep_to is not None and kept * AAC_FRAME != span.keep_to - span.keep_from:
                raise StitchError(f"stitch: the sound's span {path.name} gave {kept} AAC packets "
                                  f"where {(span.keep_to - span.keep_from) // AAC_FRAME} belong")
