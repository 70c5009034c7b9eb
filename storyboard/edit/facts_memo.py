"""A clip's facts kept in the stitcher's memo by the clip's bytes, so a re-stitch demuxes nothing.

Reading a clip's facts and cut points (``clip_facts.read_clip``) demuxes every packet of it, about
70 ms of CPU for 8 s at 720p, in every process that stitches. Both depend only on the clip's
bytes, so they are kept as a small JSON file in the memo under the clip's sha256 and
``CLIP_FACTS_VERSION``. An entry that cannot be read, or does not hold well-formed facts of that
clip, is never trusted and never fatal: the clip is demuxed again and the entry replaced.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.edit.clip_facts import ClipFacts, read_clip
from storyboard.edit.versions import CLIP_FACTS_VERSION
from storyboard.errors import MediaError

if TYPE_CHECKING:
    from storyboard.edit.render import Memo

__all__ = ["facts_name", "from_json", "read_facts", "to_json"]

MAX_ENTRY_BYTES = 4 << 20
"""More than any clip's facts take (its cut points are a few bytes each): a bigger entry is junk."""


def facts_name(sha: str) -> str:
    """The memo name of the facts of the clip whose bytes hash to ``sha``."""
    return f"clip-facts-v{CLIP_FACTS_VERSION}-{sha}.json"


def read_facts(path: Path, sha: str, memo: Memo, work: Path) -> ClipFacts | MediaError:
    """The facts of clip ``path`` (bytes ``sha``): from ``memo``, else demuxed and memoised
    (written in ``work`` first); the error reading it, when it cannot be read (not memoised)."""
    found = memo.memo_get(facts_name(sha))
    if found is not None:
        facts = _load(found, sha)
        if facts is not None:
            return facts
    try:
        facts = read_clip(path)
    except MediaError as exc:
        return exc
    produced = work / f"facts-{sha}.json"
    produced.write_text(json.dumps(to_json(facts, sha)), encoding="utf-8")
    memo.memo_put(facts_name(sha), produced)
    return facts


def _load(path: Path, sha: str) -> ClipFacts | None:
    """The facts in memo entry ``path`` if it holds well-formed ones of clip ``sha``, else None."""
    try:
        if os.path.getsize(path) > MAX_ENTRY_BYTES:
            return None
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return from_json(data, sha)


def to_json(facts: ClipFacts, sha: str) -> dict[str, Any]:
    """``facts`` as JSON-able data, naming the clip they are of."""
    rate = facts.frame_rate
    return {
        "v": CLIP_FACTS_VERSION, "clip": sha, "duration": facts.duration, "frames": facts.frames,
        "has_audio": facts.has_audio, "codec": facts.codec, "width": facts.width,
        "height": facts.height, "pix_fmt": facts.pix_fmt, "square_pixels": facts.square_pixels,
        "frame_rate": None if rate is None else [rate.numerator, rate.denominator],
        "reorders": facts.reorders, "starts_on_idr": facts.starts_on_idr,
        "extradata": facts.extradata.hex(), "x264_options": facts.x264_options,
        "colour": list(facts.colour), "cuts": list(facts.cuts),
        "sound": None if facts.sound is None else list(facts.sound),
        "sound_config": facts.sound_config.hex(), "aac_run": facts.aac_run,
    }  # fmt: skip


def from_json(data: object, sha: str) -> ClipFacts | None:
    """The facts ``to_json`` wrote for clip ``sha``, or None when ``data`` is anything else."""
    if not isinstance(data, dict) or data.get("v") != CLIP_FACTS_VERSION or data.get("clip") != sha:
        return None
    try:
        rate, colour, cuts, sound = data["frame_rate"], data["colour"], data["cuts"], data["sound"]
        checks = (
            _is(data["duration"], float) and data["duration"] >= 0,
            _is(data["frames"], int) and data["frames"] >= 0,
            *(_is(data[k], bool) for k in ("has_audio", "square_pixels", "reorders",
                                           "starts_on_idr")),
            _is(data["codec"], str),
            *(_is(data[k], int) and data[k] > 0 for k in ("width", "height")),
            *(data[k] is None or _is(data[k], str) for k in ("pix_fmt", "x264_options")),
            rate is None or (isinstance(rate, list) and len(rate) == 2
                             and all(_is(n, int) and n > 0 for n in rate)),
            _is(data["extradata"], str),
            isinstance(colour, list) and len(colour) == 4 and all(_is(n, int) for n in colour),
            isinstance(cuts, list) and all(_is(n, int) for n in cuts)
            and cuts == sorted(set(cuts)) and all(0 <= n < data["frames"] for n in cuts),
            sound is None or (isinstance(sound, list) and len(sound) == 3 and _is(sound[0], str)
                              and all(_is(n, int) and n > 0 for n in sound[1:])),
            (sound is None) != data["has_audio"], _is(data["sound_config"], str),
            data["aac_run"] is None or (_is(data["aac_run"], int) and data["aac_run"] > 0),
        )
        if not all(checks):
            return None
        return ClipFacts(
            duration=float(data["duration"]), frames=data["frames"], has_audio=data["has_audio"],
            codec=data["codec"], width=data["width"], height=data["height"],
            pix_fmt=data["pix_fmt"], square_pixels=data["square_pixels"],
            frame_rate=None if rate is None else Fraction(rate[0], rate[1]),
            reorders=data["reorders"], starts_on_idr=data["starts_on_idr"],
            extradata=bytes.fromhex(data["extradata"]), x264_options=data["x264_options"],
            colour=tuple(colour), cuts=tuple(cuts),  # type: ignore[arg-type]
            sound=None if sound is None else tuple(sound),  # type: ignore[arg-type]
            sound_config=bytes.fromhex(data["sound_config"]), aac_run=data["aac_run"],
        )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None


def _is(value: object, kind: type) -> bool:
    """``isinstance`` that keeps bools out of ints and lets a float be a whole number in JSON."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
            and value not in (float("inf"), float("-inf"))
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
