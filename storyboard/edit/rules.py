"""The edit's rules, checked at load before anything is generated: every problem of `[edit]` at once.

Two passes. `check_names` runs before the board exists (the shots a timeline names must be
shots, so the graph can be built). `check_edit` runs once the shots' lengths are known: trims
inside their clips, joins shorter than the pieces they join, text inside its clip, sound and
subtitle files that exist inside the folder and decode. It returns the warnings: a cue past the
film's end, a clip's content playing twice, a hand-off frame trimmed away. Each message names
the file, the line, the entry (`[[edit.clip]] #3 (shot 'storm')`) and the field.
"""

from __future__ import annotations

from typing import Any

from storyboard.edit.sources import MAX_SUBTITLE_BYTES, audio_seconds, read_subtitles, readable, sound_path
from storyboard.edit.join import Join, frames_of
from storyboard.errors import StoryboardFileError, did_you_mean
from storyboard.job import FPS
from storyboard.problems import Problems, Where

_ARRAYS = {"clip": "[[edit.clip]]", "title": "[[edit.title]]", "text": "[[edit.text]]",
           "sound": "[[edit.sound]]"}


def label(raw_edit: Any, kind: str, index: int) -> str:
    """`[[edit.clip]] #3 (shot 'storm')`: how a message names an entry of an [edit] array."""
    entries = raw_edit.get(kind) if isinstance(raw_edit, dict) else None
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    shot = entry.get("shot") if isinstance(entry, dict) else None
    named = f" (shot '{shot[:60]}{'...' if len(shot) > 60 else ''}')" if isinstance(shot, str) else ""
    return f"{_ARRAYS[kind]} #{index + 1}{named}"


def explain(where: Where, raw: dict[str, Any], err: Any) -> StoryboardFileError | None:
    """A pydantic error inside an [edit] array or [edit.subtitles], named by its entry; None elsewhere."""
    from storyboard import spec as model

    loc = [p for p in err["loc"] if isinstance(p, int) or not (p[:1].isupper() or p in ("str", "float", "int", "bool")
                                                              or p.startswith(("literal[", "constrained-")))]
    if len(loc) < 2 or loc[0] != "edit" or loc[1] not in (*_ARRAYS, "subtitles"):
        return None
    if loc[1] == "subtitles":
        who, fields, owner = "[edit.subtitles]", [str(p) for p in loc[2:]], model.EditSubtitles
    elif len(loc) > 2 and isinstance(loc[2], int):
        who, fields = label(raw.get("edit"), str(loc[1]), loc[2]), [str(p) for p in loc[3:]]
        owner = {"clip": model.EditClip, "title": model.EditTitle, "text": model.EditText,
                 "sound": model.EditSound}[str(loc[1])]
    else:
        return None
    if err["type"] == "extra_forbidden":
        key = fields[-1] if fields else "?"
        if len(fields) > 1 and fields[-2] == "transition":
            owner = model.Transition
        names = [f.alias or n for n, f in owner.model_fields.items()]
        return where.error(f"{who}: unknown key '{key}'{did_you_mean(key, names)}", at=tuple(loc))
    message = "is required" if err["type"] == "missing" else err["msg"]
    value = err.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) and err["type"] != "missing" else ""
    field = f": field '{'.'.join(fields)}'" if fields else ""
    return where.error(f"{who}{field}: {message}{shown}", at=tuple(loc))


# ---- before the board: names ---------------------------------------------------------------


def check_names(where: Where, raw: dict[str, Any], edit: Any, ids: dict[str, int], problems: Problems) -> None:
    """The shots `[[edit.clip]]` names exist, and the long form does not come with `sequence`."""
    if edit.clip is None:
        return
    if edit.sequence is not None:
        problems.add(where.error("[edit] field 'sequence': give either 'sequence' (the short form) or "
                                 "[[edit.clip]] tables (the timeline), not both; remove 'sequence'",
                                 at=("edit", "sequence")))
    if not edit.clip:
        problems.add(where.error("[edit] field 'clip' is empty: add [[edit.clip]] tables, or remove it",
                                 at=("edit", "clip")))
    for index, clip in enumerate(edit.clip):
        if clip.shot not in ids:
            problems.add(where.error(f"{label(raw.get('edit'), 'clip', index)}: field 'shot': unknown shot "
                                     f"'{clip.shot}'{did_you_mean(clip.shot, ids)}",
                                     at=("edit", "clip", index, "shot")))


# ---- once the shots' lengths are known ----------------------------------------------------


class _Piece:
    """A piece of the timeline as validation sees it: who it is, how long, and the join after it."""

    def __init__(self, name: str, seconds: float, join: Any, join_at: tuple[Any, ...], join_who: str,
                 shot: str | None = None, span: tuple[float, float] = (0.0, 0.0),
                 at: tuple[Any, ...] = ("edit",)) -> None:
        self.name, self.seconds, self.shot, self.span, self.at = name, seconds, shot, span, at
        self.frames = frames_of(seconds, FPS) if shot is None else (
            frames_of(span[1] - span[0], FPS) + frames_of(seconds - (span[1] - span[0]), FPS))
        """What the stitcher will make of it (``Timeline.piece_frames``)."""
        self.join, self.join_at, self.join_who = join, join_at, join_who


def check_edit(board: Any, where: Where, raw: dict[str, Any]) -> tuple[str, ...]:
    """Check `[edit]` against the shots' lengths and the files it names; return its warnings.

    Raises:
        StoryboardFileError: every problem found, in one report.
    """
    from storyboard.rules import clip_lengths

    problems = Problems(board.path)
    lengths = clip_lengths(board)
    raw_edit = raw.get("edit")
    pieces = _pieces(board, where, raw_edit, lengths, problems)
    _check_durations(where, board.edit, raw_edit, problems)
    _check_joins(where, pieces, problems)
    film = sum(p.seconds for p in pieces) - sum(p.join.duration for p in pieces[:-1] if p.join.kind != "cut")
    _check_texts(board, where, raw_edit, pieces, problems)
    _check_sounds(board, where, raw_edit, problems)
    warnings = _check_subtitles(board, where, film, problems)
    problems.raise_any()
    return (*warnings, *_twice(board, where, lengths, pieces), *_handoffs(board, where, lengths, pieces))


def _pieces(board: Any, where: Where, raw_edit: Any, lengths: dict[str, float], problems: Problems) -> list[_Piece]:
    """The clips (trims checked) and titles (placement and background checked) in film order."""
    edit = board.edit
    default = ("[edit] field 'transition.duration'", ("edit", "transition", "duration"))
    clips = []
    for index, clip in enumerate(edit.clip if edit.clip is not None else ()):
        who, at = label(raw_edit, "clip", index), ("edit", "clip", index)
        length = lengths[clip.shot]
        start, end = clip.in_, clip.out if clip.out is not None else length
        if clip.out is not None and clip.out > length:
            problems.add(where.error(f"{who}: field 'out': {clip.out} s is past the end of the clip ({length:g} s "
                                     f"long); use at most out = {length:g}", at=(*at, "out")))
            end = length
        if start >= length:
            problems.add(where.error(f"{who}: field 'in': {start} s is at or past the end of the clip ({length:g} s "
                                     "long)", at=(*at, "in")))
        elif start >= end:
            problems.add(where.error(f"{who}: field 'in': in = {start} is not before out = {end:g}; the clip would "
                                     "be empty", at=(*at, "in")))
        elif frames_of(end - start, FPS) < 1:
            problems.add(where.error(f"{who}: field 'out': {start:g}-{end:g} s is shorter than one frame "
                                     f"(1/{FPS} s)", at=(*at, "out")))
        trimmed = " as trimmed" if start > 0 or end < length else ""
        own = clip.transition is not None
        clips.append(_Piece(f"{who}{trimmed}", max(0.0, end - start) + clip.hold, clip.transition or edit.transition,
                            (*at, "transition", "duration") if own else default[1],
                            f"{who}: field 'transition.duration'" if own else default[0], clip.shot, (start, end),
                            at))
    if edit.clip is None:
        clips = [_Piece(f"shot '{s}'", lengths[s], edit.transition, default[1], default[0], s, (0.0, lengths[s]))
                 for s in board.sequence]
    in_film = {p.shot for p in clips}
    placed: dict[tuple[str, str], list[_Piece]] = {}
    for index, title in enumerate(edit.title):
        who, at = label(raw_edit, "title", index), ("edit", "title", index)
        sides = [side for side in ("before", "after") if getattr(title, side) is not None]
        if len(sides) != 1:
            fix = "name the shot the card comes before or after" if not sides else "remove one"
            problems.add(where.error(f"{who}: give exactly one of 'before' or 'after'; {fix}", at=(*at, *sides[-1:])))
            continue
        shot = getattr(title, sides[0])
        if shot not in in_film:
            known = " is a shot but not in the film's timeline" if shot in board.shots else " is not a shot"
            problems.add(where.error(f"{who}: field '{sides[0]}': '{shot}'{known}"
                                     f"{did_you_mean(shot, sorted(in_film))}", at=(*at, sides[0])))
            continue
        _check_background(board, where, who, title.background, (*at, "background"), problems)
        if frames_of(title.duration, FPS) < 1:
            problems.add(where.error(f"{who}: field 'duration': {title.duration:g} s is shorter than one frame "
                                     f"(1/{FPS} s)", at=(*at, "duration")))
        placed.setdefault((sides[0], shot), []).append(
            _Piece(who, title.duration, edit.transition, default[1], default[0], at=at))
    pieces: list[_Piece] = []
    seen: set[str | None] = set()
    for clip in clips:
        first = clip.shot not in seen
        seen.add(clip.shot)
        pieces += placed.get(("before", clip.shot), []) if first else []
        pieces.append(clip)
        pieces += placed.get(("after", clip.shot), []) if first else []
    return pieces


def _check_background(board: Any, where: Where, who: str, value: str, at: tuple[Any, ...], problems: Problems) -> None:
    import re

    if value.startswith("#"):
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            problems.add(where.error(f"{who}: field 'background': '{value}' is not a colour; write \"#rrggbb\" "
                                     "(e.g. \"#000000\") or name an image asset", at=at))
        return
    asset = board.assets.get(value)
    if asset is None:
        problems.add(where.error(f"{who}: field 'background': unknown asset '{value}'"
                                 f"{did_you_mean(value, board.assets)}; give a colour \"#rrggbb\" or the name of "
                                 "an image in [assets]", at=at))
    elif asset.kind not in ("png", "jpeg"):
        problems.add(where.error(f"{who}: field 'background': asset '{value}' is not a PNG or JPEG image", at=at))


def _check_durations(where: Where, edit: Any, raw_edit: Any, problems: Problems) -> None:
    """Every transition but a cut lasts a while, wherever it is given (even with nothing to join yet)."""
    given = [("[edit] field 'transition.duration'", ("edit", "transition", "duration"), edit.transition)]
    given += [(f"{label(raw_edit, 'clip', i)}: field 'transition.duration'", ("edit", "clip", i, "transition",
               "duration"), c.transition) for i, c in enumerate(edit.clip or ()) if c.transition is not None]
    for who, at, transition in given:
        if transition.kind != "cut" and transition.duration <= 0:
            problems.add(where.error(f"{who}: a {transition.kind} needs a duration above 0 s; it cannot be "
                                     f"negative or zero (got {transition.duration:g})", at=at))


def _check_joins(where: Where, pieces: list[_Piece], problems: Problems) -> None:
    """Each join shorter than both pieces it joins, and a piece's two joins together shorter than it,
    in the whole frames the stitcher uses (a join is at least two frames)."""
    def overlap(piece: _Piece) -> int:
        join = piece.join
        return 0 if join.kind == "cut" or join.duration <= 0 else Join(join.kind, join.duration).frames(FPS)

    for before, after in zip(pieces, pieces[1:]):
        kind, seconds, frames = before.join.kind, before.join.duration, overlap(before)
        if frames == 0:
            continue  # a cut, or a duration _check_durations reports
        for piece in (before, after):
            if frames >= piece.frames:
                longer = ("longer than" if seconds > piece.seconds else "as long as" if seconds == piece.seconds
                          else f"in whole frames ({frames} of {piece.frames} at {FPS} fps) as long as")
                problems.add(where.error(f"{before.join_who}: a {seconds:g} s {kind} is {longer} {piece.name} "
                                         f"({piece.seconds:g} s); a join must be shorter than both pieces it joins",
                                         at=before.join_at))
    for index, piece in enumerate(pieces):
        into = overlap(pieces[index - 1]) if index else 0
        out = overlap(piece) if index < len(pieces) - 1 else 0
        if into and out and into < piece.frames and out < piece.frames and into + out >= piece.frames:
            problems.add(where.error(f"{piece.join_who}: joins of {into / FPS:g} s and {out / FPS:g} s at both ends "
                                     f"of {piece.name} ({piece.seconds:g} s) leave nothing of it; use at most "
                                     f"{(piece.frames - into - 1) / FPS:.2f} s", at=piece.join_at))


def _check_texts(board: Any, where: Where, raw_edit: Any, pieces: list[_Piece], problems: Problems) -> None:
    first = {}
    for piece in pieces:
        if piece.shot is not None:
            first.setdefault(piece.shot, piece)
    for index, text in enumerate(board.edit.text):
        who, at = label(raw_edit, "text", index), ("edit", "text", index)
        piece = first.get(text.shot)
        if piece is None:
            known = "is a shot but not in the film's timeline" if text.shot in board.shots else "is not a shot"
            problems.add(where.error(f"{who}: field 'shot': '{text.shot}' {known}{did_you_mean(text.shot, first)}",
                                     at=(*at, "shot")))
        elif text.start >= text.end:
            problems.add(where.error(f"{who}: field 'end': end = {text.end:g} is not after start = {text.start:g}",
                                     at=(*at, "end")))
        elif text.end > piece.seconds + 1e-9:
            problems.add(where.error(f"{who}: field 'end': {text.end:g} s is past the end of its clip "
                                     f"({piece.seconds:g} s from its in point, as trimmed); text stays inside "
                                     f"its clip: use at most end = {piece.seconds:g}", at=(*at, "end")))


def _check_sounds(board: Any, where: Where, raw_edit: Any, problems: Problems) -> None:
    for index, sound in enumerate(board.edit.sound):
        who, at = label(raw_edit, "sound", index), ("edit", "sound", index)
        if (sound.path is None) == (sound.asset is None):
            problems.add(where.error(f"{who}: give exactly one of 'path' or 'asset'",
                                     at=(*at, "asset") if sound.asset is not None else at))
            continue
        field = "path" if sound.path is not None else "asset"
        try:
            path = sound_path(board, sound, who)
            seconds = audio_seconds(path, f"{who}: field '{field}'")
        except StoryboardFileError as exc:
            message = exc.message.removeprefix(f"{board.path}: ")
            problems.add(where.error(message if message.startswith(who) else f"{who}: field '{field}': {message}",
                                     at=(*at, field)))
            continue
        if sound.out is not None and sound.in_ >= sound.out:
            problems.add(where.error(f"{who}: field 'in': in = {sound.in_:g} is not before out = {sound.out:g}",
                                     at=(*at, "in")))
        elif sound.in_ >= seconds:
            problems.add(where.error(f"{who}: field 'in': {sound.in_:g} s is past the end of the file "
                                     f"({seconds:.2f} s long)", at=(*at, "in")))
        elif sound.out is not None and sound.out > seconds + 0.05:
            problems.add(where.error(f"{who}: field 'out': {sound.out:g} s is past the end of the file "
                                     f"({seconds:.2f} s long); omit 'out' to play it to its end", at=(*at, "out")))


def _check_subtitles(board: Any, where: Where, film: float, problems: Problems) -> list[str]:
    given = board.edit.subtitles
    if given is None:
        return []
    at = ("edit", "subtitles", "path")
    try:
        path = readable(board.root, given.path, "[edit.subtitles] field 'path'", MAX_SUBTITLE_BYTES)
        cues = read_subtitles(path, "[edit.subtitles] field 'path'")
    except StoryboardFileError as exc:
        problems.add(where.error(exc.message, at=at))
        return []
    late = [(n, c) for n, c in enumerate(cues, start=1) if c.end > film + 1e-6]
    if not late:
        return []
    n, cue = late[0]
    more = f" (and {len(late) - 1} more)" if len(late) > 1 else ""
    return [where.error(f"[edit.subtitles] '{given.path}': subtitle #{n} ({cue.start:g}-{cue.end:g} s, "
                        f"\"{cue.text[:30]}\"){more} ends after the film's end ({film:g} s); it will be cut short",
                        at=at).message]


def _twice(board: Any, where: Where, lengths: dict[str, float], pieces: list[_Piece]) -> list[str]:
    """An extension's clip starts with its source's: both in the film shows that content twice.

    One warning per extension and source, found in O(n log n) (a timeline may hold 10,000 clips).
    """
    import bisect

    by_shot = _by_shot(pieces)
    found = []
    for shot, laters in by_shot.items():
        source = board.shots[shot].extends
        while source is not None:
            if source in by_shot:
                length = lengths[source]
                spans = sorted(((p.span[0], min(p.span[1], length), p) for p in by_shot[source]
                                if p.span[0] < min(p.span[1], length)), key=lambda span: span[:2])
                reach, ends = 0.0, []  # the furthest end among the spans sorted before each one
                for start, end, _ in spans:
                    reach = max(reach, end)
                    ends.append(reach)
                starts = [start for start, _, _ in spans]
                for later in laters:
                    i = bisect.bisect_left(starts, later.span[1]) - 1  # spans starting before the later one ends
                    if i >= 0 and ends[i] > later.span[0]:
                        earlier = next(p for a, b, p in spans[:i + 1] if b > later.span[0])
                        overlap = (max(later.span[0], earlier.span[0]),
                                   min(later.span[1], earlier.span[1], length))
                        found.append(where.error(
                            f"{later.name} extends '{source}', whose clip it repeats for its first {length:g} s, "
                            f"and {earlier.name} is in the film too: {overlap[0]:g}-{overlap[1]:g} s of that "
                            f"content plays twice; set in = {length:g} on '{shot}' to start where the new part "
                            "begins", at=(*later.at, "shot")).message)
                        break
            source = board.shots[source].extends
    return found


def _handoffs(board: Any, where: Where, lengths: dict[str, float], pieces: list[_Piece]) -> list[str]:
    """A shot another shot `continues` hands over its last frame; trimmed at its out point, that frame is gone."""
    by_shot = _by_shot(pieces)
    found = []
    for shot in board.shots.values():
        target = shot.continues
        trimmed = next((p for p in by_shot.get(target or "", ()) if p.span[1] < lengths[target]), None)
        if trimmed is not None:
            found.append(where.error(
                f"{trimmed.name} ends at {trimmed.span[1]:g} s, before the end of its clip "
                f"({lengths[target]:g} s), but '{shot.id}' continues it from its last frame: the cut "
                "no longer joins; end it at the clip's end or accept the jump", at=(*trimmed.at, "out")).message)
    return found


def _by_shot(pieces: list[_Piece]) -> dict[str, list[_Piece]]:
    grouped: dict[str, list[_Piece]] = {}
    for piece in pieces:
        if piece.shot is not None:
            grouped.setdefault(piece.shot, []).append(piece)
    return grouped
