"""The film's H.264 setting: which clips of a film of cuts are copied, and how the rest match them.

A film holds one set of H.264 parameter sets (the avcC record of its first segment), so every
segment must carry the same SPS and PPS. The film takes the setting most of its copyable clips
share, as clips from one provider do (``plan_video``): those are copied packet for packet, and
each other clip is encoded with x264 set to give the very same parameter sets (``match_args``,
from the ``options:`` line x264 writes into its first picture). A clip of another encoder, size
or frame rate is then a single conform, and every other clip is still copied.

The parameter sets follow from a few settings (profile, level, reference frames, B-frames and
pyramid, weighted prediction, 8x8 transform, CABAC, the chroma QP offset, the keyframe
interval, the rate-control family, colour tags, the frame rate), and the rest (motion search,
psychovisual tuning, look-ahead) only shapes quality and speed, so a matching encode can be fast.
The stitcher checks every matched conform: one whose parameter sets still differ (a setting
x264 does not list, such as a VUI flag) makes the film re-encode every clip with the stitcher's
own setting, as before, and says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from storyboard.edit.conform import COLOUR, ClipFacts, Profile, VideoMode, copy_blocker
from storyboard.errors import MediaError

MATCH_PRESET = "ultrafast"
"""x264 preset of a matching encode: its analysis settings never reach the parameter sets.

Every setting that shapes them is pinned after the preset (``match_args``), so ultrafast only
picks the analysis (diamond search, subme 0, no trellis, look-ahead, AQ or mb-tree, fixed
B-frame placement): about 2 s of CPU for an 8 s 720p clip, against 3.2 s at superfast.
x264 runs on one thread (fixed, so the bytes never depend on the machine): at ultrafast the
clip's decode and filters are half the work and have threads of their own, and x264's frame
threads cost about 0.3 s of CPU per clip for nothing when two conforms and the copies already
share the cores (2 odd clips of 20: 4.4 s against 5.1 s, median of 4 alternating runs).
"""

_PROFILES = {66: "baseline", 77: "main", 100: "high"}
_DIRECT = {"0": "none", "1": "spatial", "2": "temporal", "3": "auto"}
_MATRICES = {1: "bt709", 4: "fcc", 5: "bt470", 6: "smpte170m", 7: "smpte240m", 9: "bt2020",
             10: "bt2020"}  # FFmpeg's colorspace numbers -> swscale's matrix names
_UNMATCHABLE = {"interlaced": "0", "cqm": "0", "intra_refresh": "0", "bluray_compat": "0",
                "fake_interlaced": "0", "nal_hrd": "none", "stitchable": "0", "sliced_threads": "0"}


@dataclass(frozen=True)
class VideoPlan:
    """How each clip of a film of cuts gets its video, and why a clip is not copied.

    Attributes:
        modes: per clip, ``copy``, ``match`` or ``encode`` (then every clip is ``encode``).
        reasons: per clip, why it is not copied (None when it is).
        match_args: ffmpeg's video encoder arguments that reproduce the film's parameter sets.
        colours: per clip, its colour conversion to the film's setting and the film's tags
            (``COLOUR`` for a clip that is not matched).
        setting: the film's avcC record (what the copied clips share); empty when encoding all.
        why_encode: why every clip is re-encoded with the stitcher's setting, or None.
    """

    modes: tuple[VideoMode, ...]
    reasons: tuple[str | None, ...]
    match_args: tuple[str, ...] = ()
    colours: tuple[tuple[str, str], ...] = ()
    setting: bytes = b""
    why_encode: str | None = None


def encode_all(count: int, why: str) -> VideoPlan:
    """The plan that re-encodes every clip with the stitcher's own setting, for ``why``."""
    return VideoPlan(("encode",) * count, (why,) * count, why_encode=why)


def plan_video(
    clips: Sequence[tuple[str, ClipFacts | MediaError]], profile: Profile
) -> VideoPlan:
    """Choose the film's setting and each clip's mode.

    Args:
        clips: each clip's file name and facts (or the error reading it), in film order.
        profile: the film's format.

    The setting is the avcC record most copyable clips share (the earliest such clip wins a
    tie). A clip is copied when it could be and has that record; every other clip is matched.
    When no clip can be copied, or the setting's encoder cannot be matched, every clip is
    encoded anew.
    """
    blockers = [
        f"it cannot be read ({facts.message})" if isinstance(facts, MediaError)
        else copy_blocker(facts, profile)
        for _, facts in clips
    ]
    copyable = [facts for (_, facts), why in zip(clips, blockers, strict=True) if why is None]
    if not copyable:
        return encode_all(len(clips), f"clip 1 ({clips[0][0]}): {blockers[0]}")
    counts = Counter(facts.extradata for facts in copyable)  # type: ignore[union-attr]
    setting = max(counts, key=lambda record: counts[record])  # first of the most common
    owner = next(i for i, (_, f) in enumerate(clips, 1) if blockers[i - 1] is None
                 and f.extradata == setting)  # type: ignore[union-attr]
    reasons = tuple(
        why if why is not None
        else None if facts.extradata == setting  # type: ignore[union-attr]
        else f"its H.264 parameter sets differ from clip {owner}'s"
        for (_, facts), why in zip(clips, blockers, strict=True)
    )
    modes: tuple[VideoMode, ...] = tuple("copy" if why is None else "match" for why in reasons)
    if "match" not in modes:
        return VideoPlan(modes, reasons, setting=setting)
    first = clips[owner - 1][1]
    args, unmatchable = match_args(first, profile)  # type: ignore[arg-type]
    if unmatchable:
        index = modes.index("match")
        why = (f"clip {index + 1} ({clips[index][0]}): {reasons[index]}, and clip {owner}'s "
               f"encoder cannot be matched: {unmatchable}")
        return encode_all(len(clips), why)
    colours = tuple(
        match_colour(facts, first) if mode == "match" and not isinstance(facts, MediaError)
        else COLOUR
        for (_, facts), mode in zip(clips, modes, strict=True)
    )
    return VideoPlan(modes, reasons, args, colours, setting)  # type: ignore[arg-type]


def match_args(facts: ClipFacts, profile: Profile) -> tuple[tuple[str, ...], str | None]:
    """ffmpeg arguments that make libx264 write ``facts``'s parameter sets, or why it cannot.

    The settings come from x264's own record of them; psychovisual tuning is off, because x264
    folds it into the chroma QP offset the record already shows.
    """
    if facts.x264_options is None:
        return (), "it was not made by x264"
    options = dict(item.partition("=")[::2] for item in facts.x264_options.split())
    for name, plain in _UNMATCHABLE.items():
        if options.get(name, plain) != plain:
            return (), f"x264's {name}={options[name]} is not supported"
    profile_idc, level = facts.extradata[1], facts.extradata[3]
    if profile_idc not in _PROFILES:
        return (), f"H.264 profile {profile_idc} is not supported"
    rate = options.get("rc")
    if rate in ("crf", "abr", "cbr", "2pass") and "crf" in options:
        quality = ("-crf", options["crf"])
    elif rate in ("abr", "cbr", "2pass"):
        quality = ("-crf", "18")  # same PPS (initial QP 26) as any bitrate mode
    elif rate == "cqp" and "qp" in options:
        quality = ("-qp", options["qp"])
    else:
        return (), f"x264's rate control {rate!r} is not supported"
    params = {
        "cabac": options.get("cabac", "1"), "ref": options.get("ref", "1"),
        "8x8dct": options.get("8x8dct", "0"), "bframes": options.get("bframes", "0"),
        "b-pyramid": options.get("b_pyramid", "0"), "weightb": options.get("weightb", "0"),
        "weightp": options.get("weightp", "0"), "keyint": options.get("keyint", "250"),
        "min-keyint": options.get("keyint_min", "25"), "open-gop": options.get("open_gop", "0"),
        "constrained-intra": options.get("constrained_intra", "0"),
        "direct": _DIRECT.get(options.get("direct", "1"), "spatial"),
        "chroma-qp-offset": options.get("chroma_qp_offset", "0"), "psy": "0",
        "threads": "1", "lookahead-threads": "1", "sliced-threads": "0",  # see MATCH_PRESET
    }
    deblock = options.get("deblock", "1:0:0").split(":")
    if deblock[0] == "0":
        params["no-deblock"] = "1"
    elif len(deblock) == 3:
        params["deblock"] = f"{deblock[1]},{deblock[2]}"
    for name in ("vbv_maxrate", "vbv_bufsize"):
        if name in options:
            params[name.replace("_", "-")] = options[name]
    return (
        "-c:v", "libx264", "-preset", MATCH_PRESET, "-profile:v", _PROFILES[profile_idc],
        "-level:v", str(level), *quality,
        "-x264-params", ":".join(f"{name}={value}" for name, value in params.items()),
    ), None


def match_colour(clip: ClipFacts, setting: ClipFacts) -> tuple[str, str]:
    """The conversion of ``clip``'s colours to ``setting``'s, and the filter giving its tags.

    The encoder writes the frames' tags into the SPS, and a decoded clip carries its own, so
    every tag is set, unspecified ones included. Untagged video is read and written with the
    matrix players assume for it (BT.709 from 720 lines up, else BT.601), so a clip that needs
    no conversion gets none.
    """
    primaries, transfer, matrix, level = setting.colour
    scale = (f"in_color_matrix={_matrix(clip)}:in_range={_range(clip)}"
             f":out_color_matrix={_matrix(setting)}:out_range={_range(setting)}")
    return scale, (f"setparams=color_primaries={primaries}:color_trc={transfer}"
                   f":colorspace={matrix}:range={level}")


def _matrix(facts: ClipFacts) -> str:
    """swscale's name for the clip's YUV matrix, or the one players assume when untagged."""
    return _MATRICES.get(facts.colour[2], "bt709" if facts.height >= 720 else "bt601")


def _range(facts: ClipFacts) -> str:
    """swscale's name for the clip's range (untagged H.264 is limited range)."""
    return "pc" if facts.colour[3] == 2 else "tv"
