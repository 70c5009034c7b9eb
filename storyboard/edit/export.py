"""The hand-off to editors: the built film's timeline written as OTIO, FCP 7 XML or a CMX 3600 EDL.

OpenTimelineIO and its adapters write every format (``otio_json``; ``fcp_xml`` from
otio-fcp-adapter; ``cmx_3600`` from otio-cmx3600-adapter), so nothing here writes XML or EDL
text. Media references are absolute ``file://`` URLs to readable copies of the clips in
``media/`` beside the film (``build/media/<shot>.mp4``): hard links to the cache's objects where
the disk allows (made read-only, so no editor can change a cached clip through them), copies
otherwise. What each format keeps (``otio_timeline`` says how the timeline maps)::

    format  file                 keeps
    otio    build/<film>.otio    everything: ranges, holds (FreezeFrame), transitions by kind,
                                 titles (generators + markers), text markers, sound tracks, metadata
    fcp7    build/<film>.xml     the same, but a hold is a still of its frame (the adapter writes
                                 no time effects) and every transition a dissolve
    edl     build/<film>.edl     the picture only (one track): holds as M2 freezes, every
                                 transition a dissolve, titles as black (BL) with a marker
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.edit.timeline import ClipPiece, Timeline, clip_refs, frames_of, resolve
from storyboard.errors import CacheError, StoryboardError
from storyboard.job import FPS

__all__ = ["FORMATS", "ExportResult", "NotBuiltError", "default_export_path", "export", "link_media",
           "write_timeline"]

FORMATS = {"otio": ("otio_json", ".otio"), "fcp7": ("fcp_xml", ".xml"), "edl": ("cmx_3600", ".edl")}
"""``--format`` -> (OTIO adapter, file suffix)."""


class NotBuiltError(StoryboardError):
    """A shot of the film has no clip yet (or not the current one): build first (exit 2)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    media: Path
    clips: int
    transitions: int
    sounds: int


def default_export_path(project: Any, fmt: str) -> Path:
    """Beside the film: ``build/lighthouse.mp4`` -> ``build/lighthouse.otio`` (``.xml``, ``.edl``).

    Raises:
        OutsideError: a symlinked folder on the way leads outside the board's folder.
    """
    from storyboard.sandbox import inside

    board = project.board
    return inside(board.root, Path(board.film.output).with_suffix(FORMATS[fmt][1]), f"{board.path}: the export")


def export(project: Any, fmt: str, out: Path | None = None) -> ExportResult:
    """Write the board's timeline in ``fmt`` (otio, fcp7, edl) and link its media; return where.

    The board is planned as ``storyboard plan`` does (no provider is called): every shot the film
    uses must be built and current, since the export names their clips.

    Raises:
        NotBuiltError: a shot of the film is not built, or changed since it was.
        CacheError: a clip is missing in the cache, or the files cannot be written.
        OutsideError: the default path or the media folder leads outside the board's folder.
    """
    from storyboard.build import plan_project

    if fmt not in FORMATS:
        raise StoryboardError(f"--format: unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    board = project.board
    steps, resolver = plan_project(project)
    missing = [s for s in dict.fromkeys(board.sequence) if s not in resolver.outputs]
    if missing:
        why = {step.shot: step.reason for step in steps}
        listed = "; ".join(f"'{s}' ({why.get(s, 'not built')})" for s in missing[:5])
        raise NotBuiltError(f"{board.path}: cannot export: {len(missing)} shot(s) of the film are not built: "
                            f"{listed}; run `storyboard build {board.path}` first; nothing was written")
    timeline = resolve(board, clip_refs(board, project.cache, resolver.outputs), FPS)
    out = Path(out) if out is not None else default_export_path(project, fmt)
    folder = _media_folder(board)
    media = link_media(timeline, folder)
    stills = _hold_stills(timeline, folder) if fmt == "fcp7" else None
    write_timeline(timeline, media, out, fmt, name=board.film.title or board.path.stem, stills=stills)
    clips = sum(isinstance(p, ClipPiece) for p in timeline.pieces)
    transitions = sum(j.kind != "cut" for j in timeline.joins)
    return ExportResult(out, folder, clips, transitions, 0 if fmt == "edl" else len(timeline.sounds))


def write_timeline(timeline: Timeline, media: Mapping[str, tuple[Path, int]], out: Path, fmt: str, *,
                   name: str, fps: int = FPS, stills: Mapping[str, Path] | None = None) -> None:
    """Write ``timeline`` to ``out`` with the OTIO adapter of ``fmt``, atomically.

    Args:
        media: shot id -> (its clip's readable copy, the clip's length in frames).
        stills: shot id -> a PNG of the frame its hold freezes, for formats that cannot freeze.
    """
    import opentimelineio as otio

    from storyboard.edit.mix import sound_seconds
    from storyboard.edit.otio_timeline import to_otio

    adapter, _ = FORMATS[fmt]
    sound_frames = {Path(s.path): frames_of(sound_seconds(Path(s.path)), fps) for s in timeline.sounds
                    if fmt != "edl"}
    result = to_otio(timeline, media, name=name, fps=fps, sound_frames=sound_frames,
                     picture_only=fmt == "edl", dissolves_only=fmt == "edl")
    if stills:
        _freeze_as_stills(result, stills, fps)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(handle)
        tmp = Path(name)
        otio.adapters.write_to_file(result, name, adapter_name=adapter,
                                    **({"rate": fps} if adapter == "cmx_3600" else {}))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as exc:
        raise CacheError(f"cannot write the export to {out}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def link_media(timeline: Timeline, folder: Path) -> dict[str, tuple[Path, int]]:
    """Put each clip of ``timeline`` in ``folder`` as ``<shot>.mp4``; shot id -> (path, frames).

    A file already there with the clip's bytes is kept; anything else at that name is replaced
    (the folder is the export's own).

    Raises:
        CacheError: the folder cannot be written.
    """
    from storyboard.media import probe

    folder.mkdir(parents=True, exist_ok=True)
    media: dict[str, tuple[Path, int]] = {}
    for piece in timeline.pieces:
        if not isinstance(piece, ClipPiece) or piece.shot in media:
            continue
        dest = folder / f"{piece.shot}.mp4"
        try:
            if not _same_file(dest, Path(piece.path), piece.sha):
                _place(Path(piece.path), dest)
        except OSError as exc:
            raise CacheError(f"cannot put the clip of shot '{piece.shot}' in {folder}: {exc.strerror or exc}") from exc
        media[piece.shot] = (dest, probe(dest).frames)
    return media


def _media_folder(board: Any) -> Path:
    from storyboard.sandbox import inside

    relative = Path(board.film.output).parent / "media"
    return inside(board.root, relative, f"{board.path}: the export's media folder", folder=True)


def _same_file(dest: Path, source: Path, sha: str) -> bool:
    """Whether ``dest`` is a regular file holding the clip (the same inode, or the same bytes)."""
    from storyboard.cache import file_sha256

    try:
        info = os.lstat(dest)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    if os.path.samefile(dest, source):
        return True
    return info.st_size == source.stat().st_size and file_sha256(dest) == sha


def _place(source: Path, dest: Path) -> None:
    """Hard-link (else copy) ``source`` to ``dest`` by way of a temporary name, read-only."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o444)
    os.replace(tmp, dest)


def _hold_stills(timeline: Timeline, folder: Path) -> dict[str, Path]:
    """shot id -> a PNG of the last used frame of its clip, for each clip with a hold."""
    from storyboard.media import extract_frame

    stills: dict[str, Path] = {}
    for piece in timeline.pieces:
        if isinstance(piece, ClipPiece) and piece.hold > 0 and piece.shot not in stills:
            last = frames_of(piece.in_, FPS) + frames_of(piece.out - piece.in_, FPS) - 1
            dest = folder / f"{piece.shot}-{piece.sha[:12]}-frame{last}.png"  # a new take, a new still
            if not dest.is_file():
                extract_frame(piece.path, (last + 0.5) / FPS, dest)
                os.chmod(dest, 0o644)  # written private; an editor on another account reads it
            stills[piece.shot] = dest
    return stills


def _freeze_as_stills(result: Any, stills: Mapping[str, Path], fps: int) -> None:
    """Each frozen item becomes the still of its frame (FCP 7 XML has no freeze the adapter writes)."""
    import opentimelineio as otio

    for clip in result.find_clips():
        about = clip.metadata.get("storyboard", {})
        if about.get("part") != "hold" or about.get("shot") not in stills:
            continue
        frames = int(clip.source_range.duration.value)
        clip.effects[:] = [e for e in clip.effects if not isinstance(e, otio.schema.FreezeFrame)]
        clip.media_reference = otio.schema.ExternalReference(
            target_url=stills[about["shot"]].resolve().as_uri(),
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, fps),
                                                    otio.opentime.RationalTime(frames, fps)))
        clip.source_range = otio.opentime.TimeRange(otio.opentime.RationalTime(0, fps),
                                                    otio.opentime.RationalTime(frames, fps))

