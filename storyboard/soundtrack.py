"""The film's soundtrack: its PCM encoded to AAC in spans at once, joined packet for packet.

ffmpeg's AAC encoder is single-threaded, and on a film whose video is copied it is most of the
stitch. So the PCM is cut into spans of ``SPAN_FRAMES`` AAC frames (1024 samples each), every span
is encoded by its own ffmpeg, several at a time, and the spans' packets are joined into one stream
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
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from storyboard.conform import BITEXACT_ARGS, Profile
from storyboard.errors import StitchError

AAC_FRAME = 1024
"""Samples per AAC frame, and the encoder's priming delay (one frame)."""

SPAN_FRAMES = 512
"""AAC frames per span: about 11 s at 48 kHz, so a 160 s film has 15 spans for the cores to share."""

PRE = 4 * AAC_FRAME
"""Samples each span encodes before its first kept packet, so that packet overlaps real signal."""

POST = 4 * AAC_FRAME
"""Samples each span encodes after its last kept packet (the window and block-switch look-ahead)."""

AAC_BITRATE_PER_CHANNEL = 96_000


@dataclass(frozen=True)
class Span:
    """One encode: it reads PCM samples ``[read_from, read_to)`` and keeps the packets that
    decode to film samples ``[keep_from, keep_to)`` (``keep_to`` None: to the end, flush
    included; ``keep_from`` -1024 keeps the priming packet of the first span)."""

    read_from: int
    read_to: int
    keep_from: int
    keep_to: int | None


def plan_spans(total: int) -> list[Span]:
    """The spans that encode ``total`` samples: boundaries every ``SPAN_FRAMES`` AAC frames."""
    step = SPAN_FRAMES * AAC_FRAME
    starts = list(range(0, max(total, 1), step))
    spans = []
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        end = total if last else start + step
        spans.append(Span(
            read_from=max(0, start - PRE), read_to=total if last else min(total, end + POST),
            keep_from=start if index else -AAC_FRAME, keep_to=None if last else end,
        ))
    return spans


def build_span_command(pcm: Path, span: Span, out: Path, profile: Profile) -> list[str]:
    """ffmpeg arguments that encode one span of the raw PCM file ``pcm`` to AAC in MOV ``out``."""
    frame_bytes = 2 * profile.channels
    return [
        "-y", "-f", "s16le", "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
        "-skip_initial_bytes", str(span.read_from * frame_bytes), "-i", str(pcm),
        "-af", f"atrim=end_sample={span.read_to - span.read_from}",
        "-c:a", "aac", "-b:a", str(AAC_BITRATE_PER_CHANNEL * profile.channels),
        *BITEXACT_ARGS, "-f", "mov", str(out),
    ]  # fmt: skip


def encode_soundtrack(
    pcm: Path,
    out: Path,
    *,
    profile: Profile,
    work: Path,
    run: Callable[[list[str], str], None],
    jobs: int | None = None,
) -> int:
    """Encode the raw PCM file ``pcm`` (s16le, the profile's layout) to the AAC track ``out``.

    Args:
        pcm: the whole film's sound, interleaved signed 16-bit samples.
        out: a MOV holding one AAC stream, with the priming an encode of the whole would have.
        profile: the film's sample rate and channels.
        work: where the spans' files go.
        run: runs one ffmpeg command (arguments, description of the step), raising on failure.
        jobs: spans encoded at once; default the machine's core count. The bytes never depend
            on it.

    Returns:
        The number of spans.
    """
    total = pcm.stat().st_size // (2 * profile.channels)
    spans = plan_spans(total)
    outs = [work / f"span{index:04d}.mov" for index in range(len(spans))]

    def encode(index: int) -> None:
        run(build_span_command(pcm, spans[index], outs[index], profile),
            f"encoding the sound, span {index + 1}/{len(spans)}")

    with ThreadPoolExecutor(max_workers=max(1, jobs or os.cpu_count() or 1)) as pool:
        list(pool.map(encode, range(len(spans))))
    join_spans(list(zip(spans, outs, strict=True)), out)
    return len(spans)


def join_spans(spans: list[tuple[Span, Path]], out: Path) -> None:
    """Write the kept packets of each encoded span, in order, as one AAC stream in ``out``.

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
                samples, kept = Fraction(1, stream.sample_rate), 0
                for index, packet in enumerate(p for p in source.demux(stream) if p.size):
                    at = span.read_from - AAC_FRAME + index * AAC_FRAME
                    if at < span.keep_from or (span.keep_to is not None and at >= span.keep_to):
                        continue
                    kept += 1
                    duration = packet.duration * packet.time_base / samples
                    packet.time_base = samples
                    packet.pts = packet.dts = at
                    packet.duration = int(duration)
                    packet.stream = target
                    output.mux(packet)
            if span.keep_to is not None and kept * AAC_FRAME != span.keep_to - span.keep_from:
                raise StitchError(f"stitch: the sound's span {path.name} gave {kept} AAC packets "
                                  f"where {(span.keep_to - span.keep_from) // AAC_FRAME} belong")
