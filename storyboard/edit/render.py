"""Rendering the timeline into memoised segments: the parts of each piece, and each join's window.

A piece (a trimmed clip or a title card) is cut into parts (``pieces.plan_parts``), and every
part is memoised under a key of exactly what shapes its bytes: the clip, the frames it takes, its
hold, volume and text, the profile, the H.264 setting and the ffmpeg build. A piece's missing
parts are made by one ffmpeg run; a window joins the tail part of one piece to the head part of
the next and is keyed by those two parts. So changing one clip's out point re-encodes that clip's
body and tail and the window after it; its head, the window before it and everything else are
found in the memo. A part is keyed by the clip frames it shows, not by where the piece starts, so
moving an in point re-makes only the parts whose frames change. A smart-cut piece (``gops.py``)
has its runs of whole GOPs as parts of their own, copied and keyed by their clip frames and
volume. The pieces that need x264 are encoded ahead, two at a time, while the copies go
on, past an encode still running (it is waited for after the rest); the progress lines still
come in film order and the bytes do not change.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from storyboard.edit.conform import (
    SEGMENT_SUFFIX,
    ClipFacts,
    Profile,
    VideoMode,
    build_conform_command,
    build_copy_command,
    conform_key,
    digest,
)
from storyboard.edit.copy_conform import copy_in_process, write_copy
from storyboard.edit.gops import (
    Span,
    build_span_command,
    smart_line,
    split_parts,
    write_packets,
)
from storyboard.edit.param_sets import extradata
from storyboard.edit.pieces import Part, Setting, plan_parts, step_line
from storyboard.edit.timeline import ClipPiece, Timeline, TitlePiece
from storyboard.edit.titles import FONT, build_title_command, overlay_text, write_text
from storyboard.edit.transition import build_window_command, window_key
from storyboard.edit.versions import CONFORM_VERSION, TITLES_VERSION
from storyboard.errors import MediaError, StitchError



class Memo(Protocol):
    """A content-addressed memo of derived files (the build cache implements it)."""

    def memo_get(self, name: str) -> Path | None:
        """The cached file stored under ``name``, verified, or None."""

    def memo_put(self, name: str, produced: Path) -> Path:
        """Adopt ``produced`` under ``name`` atomically (the file is moved); return its cached path."""


class Mismatch(Exception):
    """A segment encoded to match the copied clips' H.264 setting still has other parameter sets."""


Runner = Callable[[list[str], str], None]

Ahead = tuple[list[Part], dict[str, str], dict[str, str], dict[str, "Path | None"], list[Part],
              Future[dict[str, Path]]]
"""A piece encoded ahead: its parts, their keys, memo names and memo finds, the missing parts and
the encode making them."""


@dataclass
class Render:
    """One stitch in progress: what it joins, how each piece's video is made, and its counts."""

    timeline: Timeline
    profile: Profile
    memo: Memo
    work: Path
    report: Callable[[str], None]
    run: Runner
    modes: list[VideoMode | None]
    """Per piece: how a clip's video is made (None for a title)."""
    setting: Setting
    facts: dict[str, ClipFacts | MediaError]
    encoder: str
    smart: frozenset[int] = frozenset()
    """Pieces whose whole GOPs may be copied (``gops.py``)."""
    checked: dict[Path, bytes] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    """What was encoded, copied and reused, by StitchStats' field names (``conforms_encoded``, ...)."""

    def segments(self) -> list[Path]:
        """The film's segments in order: every piece's parts, and a window at each join."""
        pieces = self.timeline.pieces
        pool = ThreadPoolExecutor(max_workers=2)
        try:
            ahead = self.encode_ahead(pool)
            ready: dict[int, dict[str, tuple[Path, str, Part]]] = {}
            for index in range(len(pieces)):
                early = ahead.get(index)
                if early is not None:
                    self.announce(index, early[0], len(early[4]))
                    if not early[-1].done():
                        continue  # an encode still running is waited for after the rest
                ready[index] = self.piece(index, early)
            parts = [ready[index] if index in ready else self.piece(index, ahead[index])
                     for index in range(len(pieces))]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        segments: list[Path] = []
        for index, made in enumerate(parts):
            left = index > 0 and self.timeline.joins[index - 1].kind != "cut"
            right = index + 1 < len(pieces) and self.timeline.joins[index].kind != "cut"
            for name, (path, _, part) in made.items():
                if not (left and name == "head") and not (right and name == "tail"):
                    segments.append(path)
                    copied = self.modes[index] == "copy" or part.first is not None
                    self.counts["frames_copied" if copied else "frames_encoded"] += part.frames
            if right:
                segments.append(self.window(index, made["tail"][:2], parts[index + 1]["head"][:2]))
                self.counts["frames_encoded"] += self.timeline.joins[index].frames(self.profile.fps)
        return segments

    # -- pieces ------------------------------------------------------------------------------

    def encode_ahead(self, pool: ThreadPoolExecutor) -> dict[int, Ahead]:
        """Start encoding the missing parts of every piece that needs x264, two at a time.

        One x264 encode keeps about one core busy, so the copies go on meanwhile, in film order
        but past a piece whose encode is still running.
        A piece whose parts an earlier one already makes, or that cannot be planned (its error
        comes at its turn), waits for its turn. Nothing ahead on a single core.
        """
        if (os.cpu_count() or 1) < 2:
            return {}
        ahead: dict[int, Ahead] = {}
        claimed: set[str] = set()
        for index, mode in enumerate(self.modes):
            if mode == "copy":
                continue
            try:
                plan, keys, names, found = self.look_up(index)
            except StitchError:
                continue
            missing = [part for part in plan if found[part.name] is None]
            making = {names[part.name] for part in missing}
            if making and not making & claimed:
                claimed |= making
                ahead[index] = (plan, keys, names, found, missing,
                                pool.submit(self.make, index, plan, missing, announce=False))
        return ahead

    def look_up(self, index: int) -> tuple[list[Part], dict[str, str], dict[str, str],
                                           dict[str, Path | None]]:
        """Piece ``index``'s parts, their keys and memo names, and what the memo holds of them."""
        piece = self.timeline.pieces[index]
        plan = plan_parts(self.timeline, index, self.profile,
                          self.facts.get(piece.sha) if isinstance(piece, ClipPiece) else None,
                          copy=self.modes[index] == "copy", where=self.where(index))
        if index in self.smart:
            plan = self.smart_parts(index, plan)
        keys = {part.name: self.part_key(index, part) for part in plan}
        names = {part.name: self.memo_name(index, part, keys[part.name]) for part in plan}
        return plan, keys, names, {name: self.memo.memo_get(names[name]) for name in names}

    def smart_parts(self, index: int, plan: list[Part]) -> list[Part]:
        """``plan`` with its whole GOPs copied where the clip has clean cut points (else as is)."""
        piece = self.timeline.pieces[index]
        info = self.facts[piece.sha]
        assert isinstance(piece, ClipPiece) and isinstance(info, ClipFacts)
        return split_parts(plan, info.cuts, info.frames)

    def announce(self, index: int, plan: list[Part], missing: int) -> None:
        """The progress lines of piece ``index``, encoded ahead, at its turn in film order."""
        if index in self.smart:
            self.report(smart_line(self.what(index), plan, self.timeline, index, self.profile.fps))
        self.report(self.step(index, missing, len(plan)))

    def piece(self, index: int, ahead: Ahead | None = None) -> dict[str, tuple[Path, str, Part]]:
        """Piece ``index``'s parts in order (name -> (memoised file, key, part)), making what is
        missing (a piece encoded ``ahead`` was announced at its turn)."""
        piece = self.timeline.pieces[index]
        mode = self.modes[index]
        if ahead is None:
            plan, keys, names, found = self.look_up(index)
            missing = [part for part in plan if found[part.name] is None]
        else:
            plan, keys, names, found, missing, _ = ahead
        if mode != "copy":
            making = {part.name for part in missing}
            for part in plan:
                copied, made = part.first is not None, part.name in making
                self.counts[("spans_copied" if made else "spans_reused") if copied
                            else "parts_encoded" if made else "parts_reused"] += 1
        if missing:
            if ahead is None:
                if index in self.smart:  # said with the encode, as every progress line
                    self.report(smart_line(self.what(index), plan, self.timeline, index, self.profile.fps))
                made = self.make(index, plan, missing)
            else:
                made = ahead[-1].result()
            for part in missing:
                found[part.name] = self.memo.memo_put(names[part.name], made[part.name])
        counts = ("titles_encoded", "titles_reused") if isinstance(piece, TitlePiece) else (
            "conforms_copied" if mode == "copy" else "conforms_encoded", "conforms_reused")
        self.counts[counts[0] if missing else counts[1]] += 1
        result = {part.name: (found[part.name], keys[part.name], part) for part in plan}
        if mode != "copy" and self.setting.record:  # a copied run has its clip's, the film's
            for path, _, part in result.values():
                if part.first is None:
                    self.check(path, self.what(index))
        return result  # type: ignore[return-value]

    def part_key(self, index: int, part: Part) -> str:
        """Key of one part of piece ``index``: everything that shapes its bytes."""
        piece, mode, profile = self.timeline.pieces[index], self.modes[index], self.profile
        if isinstance(piece, TitlePiece):
            return digest({
                "v": TITLES_VERSION, "step": "title", "text": piece.text,
                "background": piece.background, "image": piece.image_sha,
                "frames": part.frames, "from": part.start, "to": part.end,
                "profile": asdict(profile), **self.setting.fields(), "encoder": self.encoder,
            })
        base = conform_key(piece.sha, profile, 0, encoder=self.encoder, mode=mode or "encode",
                           video_args=self.setting.video_args,
                           colour=self.setting.colour_of(self.facts.get(piece.sha)))
        if mode == "copy":
            return base if piece.volume == 1 else digest({"copy": base, "volume": piece.volume})
        if part.first is not None:  # a copied run: the clip's own packets and sound
            return digest({"v": CONFORM_VERSION, "step": "gops", "clip": piece.sha,
                           "from": part.first, "to": part.first + part.frames,
                           "volume": piece.volume, "profile": asdict(profile),
                           "audio": "pcm_s16le", "encoder": self.encoder})
        at = part.trim.start  # a part is keyed by its clip frames, so moving the in point
        # re-makes only the parts whose frames change (the sound too, when a frame is whole samples)
        return digest({
            "v": CONFORM_VERSION, "step": "part", "conform": base,
            "in": at if profile.sample_rate % profile.fps else None, "from": at + part.start,
            "to": at + part.end, "stop": at + min(part.trim.used, part.end),
            "volume": piece.volume, "titles": TITLES_VERSION if part.texts else 0,
            "text": [[o.text, o.position, o.style, a, b] for o, a, b in part.texts],
        })

    def memo_name(self, index: int, part: Part, key: str) -> str:
        mode = self.modes[index]
        kind = ("title" if mode is None else "gops" if part.first is not None
                else f"conform-{mode}")
        return f"{kind}-{key}{SEGMENT_SUFFIX}"

    def make(self, index: int, plan: list[Part], missing: list[Part],
             announce: bool = True) -> dict[str, Path]:
        """Encode (or copy) the ``missing`` parts of piece ``index`` in one ffmpeg run (and one
        remux and one ffmpeg run per copied run of GOPs); a copied clip's, in this process when
        ``copy_conform`` can.

        Encoded ahead (``announce`` false), its progress line comes at its turn in film order.
        """
        piece, profile = self.timeline.pieces[index], self.profile
        outs = {part.name: self.work / f"{index}-{part.name}{SEGMENT_SUFFIX}" for part in missing}
        bounds = {part.name: (part.start, part.end) for part in plan}
        if announce:
            self.report(self.step(index, len(missing), len(plan)))
        if isinstance(piece, TitlePiece):
            text = write_text(piece.text, self.work, f"title-{index}.txt")
            argv = build_title_command(piece, outs, profile=profile, bounds=bounds, text_file=text,
                                       video_args=self.setting.video_args,
                                       matrix=self.setting.matrix, tags=self.setting.tags)
            self.run(argv, f"rendering the title {piece.text!r}")
            return outs
        info = self.facts[piece.sha]
        assert isinstance(info, ClipFacts)  # plan_parts raised otherwise
        where = f"clip {index + 1} ({piece.path})"
        if self.modes[index] == "copy":
            if copy_in_process(info, profile, piece.volume):  # no ffmpeg run (copy_conform.py)
                try:
                    if write_copy(piece.path, outs["whole"], profile=profile, frames=info.frames,
                                  sound_end=info.aac_run):
                        return outs
                except MediaError as exc:
                    raise StitchError(f"stitch: conforming {where} failed: {exc.message}") from exc
            argv = build_copy_command(piece.path, outs["whole"], profile=profile,
                                      frames=info.frames, has_audio=info.has_audio,
                                      volume=piece.volume)
            self.run(argv, f"conforming {where}")
            return outs
        for part in [p for p in missing if p.first is not None]:
            packets = self.work / f"{index}-{part.name}-packets{SEGMENT_SUFFIX}"
            write_packets(piece.path, packets, part.first, part.first + part.frames)
            self.run(build_span_command(packets, piece.path, outs[part.name], profile=profile,
                                        span=Span(part.start, part.end, True, part.first),
                                        clip=info, volume=piece.volume),
                     f"copying frames {part.first}-{part.first + part.frames} of {where}")
        missing = [p for p in missing if p.first is None]
        if not missing:
            return outs
        drawn = {}
        for part in missing:
            filters = [overlay_text(o, write_text(o.text, self.work, f"text-{index}-{part.name}-{n}"
                                                  ".txt"), profile,
                                    None if (a, b) == (0, part.frames) else (a, b))
                       for n, (o, a, b) in enumerate(part.texts)]
            if filters:
                drawn[part.name] = ",".join(filters)
        if index not in self.smart:  # one run decodes the clip once for every part
            self.run(build_conform_command(
                piece.path, {part.name: outs[part.name] for part in missing}, profile=profile,
                frames=plan[-1].end, has_audio=info.has_audio,
                video_args=self.setting.video_args, colour=self.setting.colour_of(info),
                trim=missing[0].trim, bounds=bounds, drawn=drawn), f"conforming {where}")
            return outs
        for part in missing:  # one run per part, decoding from the GOP it starts in
            trim = part.trim
            seek = self.seek_point(index, min(trim.start + part.start, trim.start + trim.used - 1))
            skip = max(0, seek - trim.start)  # the piece's frames before the seek, not decoded
            self.run(build_conform_command(
                piece.path, {part.name: outs[part.name]}, profile=profile,
                frames=part.end - skip, has_audio=info.has_audio,
                video_args=self.setting.video_args, colour=self.setting.colour_of(info),
                trim=replace(trim, start=trim.start + skip, used=trim.used - skip),
                bounds={part.name: (part.start - skip, part.end - skip)}, drawn=drawn,
                seek=seek), f"conforming {where}")
        return outs

    def seek_point(self, index: int, frame: int) -> int:
        """The last clean cut point of piece ``index``'s clip at or before ``frame``."""
        info = self.facts[self.timeline.pieces[index].sha]
        assert isinstance(info, ClipFacts)
        return max((at for at in info.cuts if at <= frame), default=0)

    # -- windows -----------------------------------------------------------------------------

    def window(self, index: int, tail: tuple[Path, str], head: tuple[Path, str]) -> Path:
        """The window joining piece ``index`` to the next (0-based), encoded if the memo lacks it."""
        join = self.timeline.joins[index]
        color = join.color if join.kind == "dip" else ""
        name = f"window-{window_key(tail[1], head[1], join.kind, color)}{SEGMENT_SUFFIX}"
        found = self.memo.memo_get(name)
        if found is not None:
            self.counts["windows_reused"] += 1
        else:
            count = len(self.timeline.joins)
            kinds = ["title" if self.modes[i] is None else "clip" for i in (index, index + 1)]
            self.report(f"{join.kind} window {index + 1}/{count} "
                        f"({kinds[0]} {index + 1} -> {kinds[1]} {index + 2})")
            produced = self.work / name
            argv = build_window_command(tail[0], head[0], produced, profile=self.profile,
                                        kind=join.kind, edge=join.frames(self.profile.fps),
                                        color=join.color, video_args=self.setting.video_args,
                                        tags=self.setting.tags)
            self.run(argv, f"encoding the {join.kind} from {self.what(index)} "
                           f"to {self.what(index + 1)}")
            found = self.memo.memo_put(name, produced)
            self.counts["windows_encoded"] += 1
        if self.setting.record:
            self.check(found, f"the {join.kind} window after {self.what(index)}")
        return found

    # -- words -------------------------------------------------------------------------------

    def label(self, index: int) -> str:
        piece = self.timeline.pieces[index]
        return piece.shot if isinstance(piece, ClipPiece) else piece.name or piece.text

    def where(self, index: int) -> str:
        piece = self.timeline.pieces[index]
        if isinstance(piece, TitlePiece):
            return f"title {index + 1} ({piece.text!r})"
        return f"clip {index + 1} ({piece.path})"

    def what(self, index: int) -> str:
        return f"{'title' if self.modes[index] is None else 'clip'} {index + 1} ({self.label(index)})"

    def step(self, index: int, missing: int, parts: int) -> str:
        """The progress line naming what is about to be encoded for piece ``index``."""
        piece = self.timeline.pieces[index]
        info = self.facts.get(piece.sha) if isinstance(piece, ClipPiece) else None
        return step_line(self.timeline, index, self.modes[index], info, self.profile.fps,
                         self.label(index), missing, parts)

    def check(self, path: Path, what: str) -> None:
        """Raise ``Mismatch`` when a segment's parameter sets are not the film's."""
        if path not in self.checked:
            self.checked[path] = extradata(path)
        if self.checked[path] != self.setting.record:
            raise Mismatch(f"{what} encoded to match the other clips' H.264 setting still has "
                           "other parameter sets")


__all__ = ["FONT", "Memo", "Mismatch", "Render", "extradata"]
