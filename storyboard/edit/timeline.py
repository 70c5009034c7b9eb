"""The film's timeline: what ``[edit]`` resolves to once each clip's length is known.

Everything after loading speaks this one shape: the stitcher turns it into pictures and sound,
the mix places music and voice-over on it, the export hands it to Resolve or Premiere, and the
film's key is its ``key_fields``. Times are seconds; the stitcher rounds each piece to whole
frames of the film (``piece_frames``), so every consumer agrees on where each piece starts.

The picture track is a list of pieces (trimmed clips and title cards) joined by ``Join``s; every
join but a cut overlaps the two pieces it joins by its duration, as ffmpeg's ``xfade`` does::

    piece 0 .........|  join 0  |......... piece 1 .........|  join 1  |..... piece 2
                      (overlap)                               (overlap)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from storyboard.edit.join import Join, frames_of
from storyboard.job import FPS

__all__ = [
    "ClipPiece",
    "ClipRef",
    "Cue",
    "Join",
    "Overlay",
    "Piece",
    "Sound",
    "Subtitles",
    "TitlePiece",
    "Timeline",
    "clip_refs",
    "file_sha256",
    "frames_of",
    "resolve",
]

Position = Literal["lower-third", "center", "top"]


@dataclass(frozen=True)
class Overlay:
    """Text drawn over the picture of one piece, from ``start`` to ``end`` seconds after the
    piece's first frame (its in point). Burned subtitles arrive here too (``style="subtitle"``)."""

    text: str
    start: float
    end: float
    position: Position = "lower-third"
    style: Literal["text", "subtitle"] = "text"


@dataclass(frozen=True)
class ClipPiece:
    """A shot's clip, trimmed to ``[in_, out)`` seconds of the source, then its last used frame
    held ``hold`` seconds (silent). ``volume`` scales the clip's own sound (0 mutes it)."""

    shot: str
    sha: str
    """sha256 of the clip's bytes: the cache's name for it."""
    path: Path
    in_: float
    out: float
    hold: float = 0.0
    volume: float = 1.0
    overlays: tuple[Overlay, ...] = ()
    key: str = ""
    """The shot's cache key (for the export's metadata); not part of the film's key."""
    provider: str = ""

    @property
    def seconds(self) -> float:
        return self.out - self.in_ + self.hold


@dataclass(frozen=True)
class TitlePiece:
    """A card of its own: ``text`` centred on a colour or an image, ``duration`` seconds, silent."""

    text: str
    duration: float
    background: str = "#000000"
    """``#rrggbb``; ignored when ``image`` is set."""
    image: Path | None = None
    image_sha: str | None = None
    name: str = ""
    """A stable label (``title-1``) for progress lines, memo names and the export."""

    @property
    def seconds(self) -> float:
        return self.duration


Piece = ClipPiece | TitlePiece


@dataclass(frozen=True)
class Sound:
    """Music or voice-over placed at ``start`` film seconds: ``[in_, out)`` seconds of the file
    (``out`` None: to its end), ``gain_db``, fades in and out, and ducked under loud clip sound."""

    path: Path
    sha: str
    start: float = 0.0
    in_: float = 0.0
    out: float | None = None
    gain_db: float = 0.0
    fade_in: float = 0.0
    fade_out: float = 0.0
    duck: bool = False
    name: str = ""


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``text`` from ``start`` to ``end`` film seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Subtitles:
    """The film's subtitles (SRT or WebVTT, in film time): burned into the picture, or a soft
    track in the MP4 plus a sidecar ``.srt`` beside the film."""

    path: Path
    sha: str
    burn: bool = False
    cues: tuple[Cue, ...] = ()


@dataclass(frozen=True)
class Timeline:
    """The whole edit, resolved: pieces in film order, the joins between them, and the sound."""

    pieces: tuple[Piece, ...]
    joins: tuple[Join, ...] = ()
    """``joins[i]`` joins ``pieces[i]`` to ``pieces[i + 1]``; one fewer than the pieces."""
    sounds: tuple[Sound, ...] = ()
    subtitles: Subtitles | None = None
    loudness: float | None = None
    """Integrated loudness target in LUFS (true peak <= -1 dBTP) when ``[edit] audio.normalize``."""
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pieces and len(self.joins) != len(self.pieces) - 1:
            raise ValueError(f"{len(self.pieces)} pieces need {len(self.pieces) - 1} joins, "
                             f"got {len(self.joins)}")

    def piece_frames(self, index: int, fps: int) -> int:
        """Frames piece ``index`` contributes before overlaps: its trimmed length plus its hold."""
        piece = self.pieces[index]
        if isinstance(piece, TitlePiece):
            return frames_of(piece.duration, fps)
        return frames_of(piece.out - piece.in_, fps) + frames_of(piece.hold, fps)

    def starts(self, fps: int) -> list[int]:
        """The film frame where each piece begins (a join's overlap pulls the next one earlier)."""
        starts, at = [], 0
        for index in range(len(self.pieces)):
            starts.append(at)
            at += self.piece_frames(index, fps)
            if index < len(self.joins):
                at -= self.joins[index].frames(fps)
        return starts

    def frames(self, fps: int) -> int:
        """The film's length in frames."""
        if not self.pieces:
            return 0
        return self.starts(fps)[-1] + self.piece_frames(len(self.pieces) - 1, fps)

    def duration(self, fps: int) -> float:
        return self.frames(fps) / fps

    def key_fields(self) -> dict[str, object]:
        """Everything that shapes the film's bytes, as JSON-able data (no paths, no cache keys)."""
        def piece(p: Piece) -> dict[str, object]:
            if isinstance(p, TitlePiece):
                return {"title": p.text, "duration": p.duration, "background": p.background,
                        "image": p.image_sha}
            return {"clip": p.sha, "in": p.in_, "out": p.out, "hold": p.hold, "volume": p.volume,
                    "overlays": [vars(o) for o in p.overlays]}

        return {
            "pieces": [piece(p) for p in self.pieces],
            "joins": [vars(j) for j in self.joins],
            "sounds": [{k: v for k, v in vars(s).items() if k not in ("path", "name")}
                       for s in self.sounds],
            "subtitles": None if self.subtitles is None else {
                "sha": self.subtitles.sha, "burn": self.subtitles.burn},
            "loudness": self.loudness,
        }


@dataclass(frozen=True)
class ClipRef:
    """A built shot's clip, as the lock records it: what ``resolve`` needs of it."""

    sha: str
    path: Path
    duration: float
    key: str = ""
    provider: str = ""


def clip_refs(board: object, cache: object, outputs: Mapping[str, Mapping[str, object]]) -> dict[str, ClipRef]:
    """Each built shot of the film as a ``ClipRef``: its clip verified in ``cache``, its length and key.

    ``outputs`` is the lock's record per shot id (``outputs[s]["outputs"]["clip"]``, ``["meta"]``).

    Raises:
        CacheError: a clip is missing or corrupt in the cache.
    """
    from storyboard.errors import CacheError

    refs = {}
    for shot in dict.fromkeys(board.sequence):  # type: ignore[attr-defined]
        entry = outputs[shot]
        sha = entry["outputs"]["clip"]  # type: ignore[index]
        path = cache.verified(sha)  # type: ignore[attr-defined]
        if path is None:
            raise CacheError(f"clip {sha[:12]} of shot {shot!r} is missing or corrupt in the cache; run the "
                             "build again to regenerate it")
        meta = entry.get("meta") or {}  # type: ignore[union-attr]
        refs[shot] = ClipRef(sha=sha, path=path, duration=float(meta["duration"]),  # type: ignore[index]
                             key=str(entry.get("key", "")), provider=str(entry.get("provider", "")))
    return refs


def resolve(board: object, clips: Mapping[str, ClipRef], fps: int = FPS) -> Timeline:
    """The board's ``[edit]`` as a timeline over the built ``clips`` (shot id -> clip).

    The short form (``sequence`` and one transition) gives each whole clip joined by that
    transition. The timeline form trims each ``[[edit.clip]]`` (``out`` defaults to, and is
    clamped at, the clip's real length), inserts each ``[[edit.title]]`` before or after the first
    clip of its shot, joins a piece to the next with its clip's ``transition`` or ``[edit]``'s,
    puts ``[[edit.text]]`` on its clip and burned subtitles on the pieces they fall on (split at
    piece boundaries, at ``fps``), and reads ``[[edit.sound]]`` and the subtitle file from the
    board's folder (their sha256 in the timeline). The board was validated at load, so every
    shot named is in the timeline and every file is inside the folder.

    Raises:
        StoryboardFileError: a sound, image or subtitle file changed since loading (gone, outside
            the folder, or no longer parses).
    """
    edit = board.edit  # type: ignore[attr-defined]
    entries = _clip_entries(edit, board.sequence)  # type: ignore[attr-defined]
    cards = _titles(board, edit)
    texts: dict[str, list[Overlay]] = {}
    for text in getattr(edit, "text", ()):
        texts.setdefault(text.shot, []).append(Overlay(text.text, text.start, text.end, text.position))
    pieces: list[Piece] = []
    outgoing: list[object] = []  # the transition after each piece; None: [edit]'s
    seen: set[str] = set()
    for entry in entries:
        ref = clips[entry.shot]
        first = entry.shot not in seen
        seen.add(entry.shot)
        before = cards.get(("before", entry.shot), []) if first else []
        out = ref.duration if entry.out is None else min(entry.out, ref.duration)
        clip = ClipPiece(shot=entry.shot, sha=ref.sha, path=ref.path, in_=min(entry.in_, out), out=out,
                         hold=entry.hold, volume=entry.volume, key=ref.key, provider=ref.provider,
                         overlays=tuple(texts.get(entry.shot, ())) if first else ())
        after = cards.get(("after", entry.shot), []) if first else []
        pieces += [*before, clip, *after]
        outgoing += [*(None for _ in before), entry.transition, *(None for _ in after)]
    joins = tuple(_join(t or edit.transition) for t in outgoing[:-1])
    subtitles = _subtitles(board)
    timeline = Timeline(tuple(pieces), joins, sounds=tuple(_sounds(board)), subtitles=subtitles,
                        loudness=edit.audio.loudness if edit.audio.normalize else None)
    if subtitles is not None and subtitles.burn:
        timeline = _burn(timeline, subtitles.cues, fps)
    return timeline


@dataclass(frozen=True)
class _Entry:
    shot: str
    in_: float = 0.0
    out: float | None = None
    hold: float = 0.0
    volume: float = 1.0
    transition: object = None


def _clip_entries(edit: object, sequence: tuple[str, ...]) -> list[_Entry]:
    """``[[edit.clip]]``, or the short form's ``sequence`` as whole clips."""
    given = getattr(edit, "clip", None)
    if given is None:
        return [_Entry(shot) for shot in sequence]
    return [_Entry(c.shot, c.in_, c.out, c.hold, c.volume, c.transition) for c in given]


def _join(transition: object) -> Join:
    kind = transition.kind  # type: ignore[attr-defined]
    return Join(kind, 0.0 if kind == "cut" else transition.duration,  # type: ignore[attr-defined]
                getattr(transition, "color", "#000000").lower())


def _titles(board: object, edit: object) -> dict[tuple[str, str], list[TitlePiece]]:
    """The cards by where they go, ("before" | "after", shot), each list in file order."""
    cards: dict[tuple[str, str], list[TitlePiece]] = {}
    digests: dict[Path, str] = {}
    for number, title in enumerate(getattr(edit, "title", ()), start=1):
        side = "before" if title.before is not None else "after"
        image = image_sha = None
        background = title.background
        if not background.startswith("#"):
            image = board.assets[background].path  # type: ignore[attr-defined]
            image_sha = digests[image] = digests.get(image) or file_sha256(image)
            background = "#000000"
        cards.setdefault((side, getattr(title, side)), []).append(
            TitlePiece(text=title.text, duration=title.duration, background=background.lower(), image=image,
                       image_sha=image_sha, name=f"title-{number}"))
    return cards


def _sounds(board: object) -> list[Sound]:
    from storyboard.edit.sources import sound_path

    sounds = []
    for number, s in enumerate(getattr(board.edit, "sound", ()), start=1):  # type: ignore[attr-defined]
        path = sound_path(board, s, f"[[edit.sound]] #{number}")
        sounds.append(Sound(path=path, sha=file_sha256(path), start=s.start, in_=s.in_, out=s.out,
                            gain_db=s.gain, fade_in=s.fade_in, fade_out=s.fade_out, duck=s.duck,
                            name=f"sound-{number}"))
    return sounds


def _subtitles(board: object) -> Subtitles | None:
    from storyboard.edit.sources import read_subtitles, readable

    given = getattr(board.edit, "subtitles", None)  # type: ignore[attr-defined]
    if given is None:
        return None
    what = f"{board.path}: [edit.subtitles] field 'path'"  # type: ignore[attr-defined]
    path = readable(board.root, given.path, what)  # type: ignore[attr-defined]
    cues = read_subtitles(path, what)
    return Subtitles(path=path, sha=file_sha256(path), burn=given.burn, cues=cues)


def _burn(timeline: Timeline, cues: tuple[Cue, ...], fps: int) -> Timeline:
    """Each cue drawn on every clip it overlaps (through a join's overlap both pieces carry it).

    A sweep over the cues sorted by start: pieces begin and end in order (a join is shorter than
    the piece after it), so each cue enters the active list once and leaves it once.
    """
    from dataclasses import replace

    pieces = list(timeline.pieces)
    ordered = sorted(cues, key=lambda c: c.start)
    active: list[Cue] = []
    next_cue = 0
    for index, start in enumerate(timeline.starts(fps)):
        begin, end = start / fps, (start + timeline.piece_frames(index, fps)) / fps
        while next_cue < len(ordered) and ordered[next_cue].start < end:
            active.append(ordered[next_cue])
            next_cue += 1
        active = [c for c in active if c.end > begin]
        spans = [Overlay(c.text, max(c.start, begin) - begin, min(c.end, end) - begin, "lower-third", "subtitle")
                 for c in active if c.start < end]
        piece = pieces[index]
        if spans and isinstance(piece, ClipPiece):  # a title card shows its own text only
            pieces[index] = replace(piece, overlays=(*piece.overlays, *spans))
    return replace(timeline, pieces=tuple(pieces))


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
