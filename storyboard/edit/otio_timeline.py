"""The film's timeline as an OpenTimelineIO timeline: what Resolve, Premiere and Avid read.

OTIO's transitions sit between two items without taking time; ours overlap the two pieces they
join (as ffmpeg's ``xfade``). So each transition starts at the next piece's first frame and
borrows the outgoing piece's last frames as its handle: the outgoing item ends ``d`` frames
early (its hold first, then its clip), ``in_offset`` is 0 and ``out_offset`` is ``d``. Every
item then starts on the track at the frame the film shows it (``Timeline.starts``)::

    film:   |---- piece 0 ----|                      OTIO:  |-- item 0 --|T d|
                         |d|---- piece 1 ----|                           |---- item 1 ----|

A hold is a second item of the same media, one frame frozen (``FreezeFrame``); a title card is
a ``GeneratorReference`` (a solid colour) carrying its text as a marker; text over a clip is a
marker on that clip. Music and voice-over go on audio tracks of their own, after one track of
the clips' own sound. Every clip carries ``metadata["storyboard"]``: shot id, cache key,
provider, clip sha256.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import opentimelineio as otio

from storyboard.edit.timeline import ClipPiece, Sound, Timeline, TitlePiece, frames_of

__all__ = ["DISSOLVE_ONLY", "NAMESPACE", "reel_name", "to_otio"]

NAMESPACE = "storyboard"
"""The metadata key under which each item says where it came from."""

DISSOLVE_ONLY = "every transition is written as a dissolve of its length (an EDL knows no other)"


def to_otio(timeline: Timeline, media: Mapping[str, tuple[Path, int]], *, name: str, fps: int,
            sound_frames: Mapping[Path, int] | None = None, picture_only: bool = False,
            dissolves_only: bool = False) -> otio.schema.Timeline:
    """The OTIO timeline of ``timeline``.

    Args:
        timeline: the resolved edit.
        media: shot id -> (the readable copy of its clip, the clip's length in frames).
        name: the timeline's name (the film's title).
        fps: the film's frame rate; every time is a whole frame at this rate.
        sound_frames: each sound file -> its length in frames (for its available range).
        picture_only: leave the audio tracks out (an EDL holds one track).
        dissolves_only: write every transition as a dissolve (see ``DISSOLVE_ONLY``).
    """
    result = otio.schema.Timeline(name=name, global_start_time=otio.opentime.RationalTime(0, fps))
    result.metadata[NAMESPACE] = {"fps": fps, "frames": timeline.frames(fps)}
    result.tracks.append(_picture(timeline, media, fps, dissolves_only))
    if not picture_only:
        result.tracks.append(_clip_sound(timeline, media, fps))
        film = timeline.frames(fps)
        for sound in timeline.sounds:
            track = _sound_track(sound, fps, film, (sound_frames or {}).get(Path(sound.path)))
            if track is not None:
                result.tracks.append(track)
    return result


def _time(frames: int, fps: int) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, fps)


def _range(start: int, duration: int, fps: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(_time(start, fps), _time(duration, fps))


def _visible(timeline: Timeline, fps: int) -> list[tuple[int, int]]:
    """Each piece's (clip frames, hold frames) on the track: its own, less the next join's overlap."""
    shown = []
    for index, piece in enumerate(timeline.pieces):
        overlap = timeline.joins[index].frames(fps) if index < len(timeline.joins) else 0
        if isinstance(piece, TitlePiece):
            shown.append((frames_of(piece.duration, fps) - overlap, 0))
            continue
        clip, hold = frames_of(piece.out - piece.in_, fps), frames_of(piece.hold, fps)
        taken = min(hold, overlap)
        shown.append((clip - (overlap - taken), hold - taken))
    return shown


def _picture(timeline: Timeline, media: Mapping[str, tuple[Path, int]], fps: int,
             dissolves_only: bool) -> otio.schema.Track:
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for index, (piece, (clip_frames, hold_frames)) in enumerate(zip(timeline.pieces, _visible(timeline, fps))):
        if isinstance(piece, TitlePiece):
            track.append(_title(piece, clip_frames, fps))
        else:
            track.append(_clip(piece, media[piece.shot], clip_frames, fps))
            if hold_frames:
                track.append(_hold(piece, media[piece.shot], hold_frames, fps))
        if index < len(timeline.joins) and timeline.joins[index].kind != "cut":
            join = timeline.joins[index]
            kind = otio.schema.TransitionTypes.SMPTE_Dissolve
            if join.kind != "crossfade" and not dissolves_only:
                kind = otio.schema.TransitionTypes.Custom
            track.append(otio.schema.Transition(
                name=join.kind, transition_type=kind, in_offset=_time(0, fps),
                out_offset=_time(join.frames(fps), fps),
                metadata={NAMESPACE: {"kind": join.kind, "duration": join.duration, "color": join.color}}))
    return track


def _reference(path: Path, frames: int, fps: int) -> otio.schema.ExternalReference:
    return otio.schema.ExternalReference(target_url=Path(path).resolve().as_uri(),
                                         available_range=_range(0, frames, fps))


def _about(piece: ClipPiece) -> dict[str, object]:
    return {"shot": piece.shot, "key": piece.key, "provider": piece.provider, "sha256": piece.sha,
            "in": piece.in_, "out": piece.out, "hold": piece.hold, "volume": piece.volume}


def _metadata(piece: ClipPiece, **more: object) -> dict[str, object]:
    """The clip's ``storyboard`` metadata, the same as FCP 7 master comments (its adapter writes
    only its own namespace), which Premiere and Resolve show with the clip, and its EDL reel."""
    comments = {"mastercomment1": f"shot {piece.shot}", "mastercomment2": f"key {piece.key}",
                "mastercomment3": f"provider {piece.provider}"}
    return {NAMESPACE: {**_about(piece), **more}, "fcp_xml": {"comments": comments},
            "cmx_3600": {"reel": reel_name(piece.shot, piece.sha)}}


def reel_name(shot: str, sha: str) -> str:
    """An EDL reel (8 letters and digits) for a shot's clip: its id's start and its clip's sha.

    The adapter would cut ``storm-at-sea-1.mp4`` and ``storm-at-sea-2.mp4`` to the same
    ``stormats``; a reel must name one source.
    """
    letters = "".join(ch for ch in shot if ch.isalnum())[:4].upper()
    return (letters + sha.upper())[:8]


def _clip(piece: ClipPiece, source: tuple[Path, int], frames: int, fps: int) -> otio.schema.Clip:
    first = frames_of(piece.in_, fps)
    clip = otio.schema.Clip(name=piece.shot, media_reference=_reference(source[0], source[1], fps),
                            source_range=_range(first, frames, fps), metadata=_metadata(piece))
    for overlay in piece.overlays:
        start = frames_of(overlay.start, fps)
        clip.markers.append(otio.schema.Marker(
            name=overlay.text, marked_range=_range(first + start, frames_of(overlay.end, fps) - start, fps),
            color=otio.schema.MarkerColor.YELLOW if overlay.style == "text" else otio.schema.MarkerColor.CYAN,
            metadata={NAMESPACE: {"kind": overlay.style, "position": overlay.position,
                                  "start": overlay.start, "end": overlay.end}}))
    return clip


def _hold(piece: ClipPiece, source: tuple[Path, int], frames: int, fps: int) -> otio.schema.Clip:
    """The last used frame, frozen for the hold."""
    last = frames_of(piece.in_, fps) + frames_of(piece.out - piece.in_, fps) - 1
    clip = otio.schema.Clip(name=f"{piece.shot} hold", media_reference=_reference(source[0], source[1], fps),
                            source_range=_range(last, frames, fps),
                            metadata=_metadata(piece, part="hold"))
    clip.effects.append(otio.schema.FreezeFrame())
    return clip


def _title(piece: TitlePiece, frames: int, fps: int) -> otio.schema.Clip:
    about = {"title": piece.text, "background": piece.background, "duration": piece.duration,
             "image": None if piece.image is None else str(piece.image), "image_sha256": piece.image_sha}
    generator = otio.schema.GeneratorReference(
        name=piece.name or "title", generator_kind="Color",
        parameters={"color": piece.background, "text": piece.text},
        available_range=_range(0, frames_of(piece.duration, fps), fps),
        metadata={"fcp_xml": {"effecttype": "generator", "mediatype": "video", "effectcategory": "Matte"}})
    clip = otio.schema.Clip(name=piece.name or "title", media_reference=generator,
                            source_range=_range(0, frames, fps),
                            metadata={NAMESPACE: about, "cmx_3600": {"reel": "BL"}})
    clip.markers.append(otio.schema.Marker(name=piece.text, marked_range=_range(0, frames, fps),
                                           color=otio.schema.MarkerColor.RED,
                                           metadata={NAMESPACE: {"kind": "title"}}))
    return clip


def _clip_sound(timeline: Timeline, media: Mapping[str, tuple[Path, int]], fps: int) -> otio.schema.Track:
    """The clips' own sound under their pictures: a hold and a title card are silent (gaps)."""
    track = otio.schema.Track(name="A1 clips", kind=otio.schema.TrackKind.Audio)
    for index, (piece, (clip_frames, hold_frames)) in enumerate(zip(timeline.pieces, _visible(timeline, fps))):
        if isinstance(piece, TitlePiece):
            track.append(otio.schema.Gap(source_range=_range(0, clip_frames, fps)))
        else:
            source = media[piece.shot]
            clip = otio.schema.Clip(name=piece.shot, media_reference=_reference(source[0], source[1], fps),
                                    source_range=_range(frames_of(piece.in_, fps), clip_frames, fps),
                                    metadata=_metadata(piece))
            track.append(clip)
            if hold_frames:
                track.append(otio.schema.Gap(source_range=_range(0, hold_frames, fps)))
        if index < len(timeline.joins) and timeline.joins[index].kind != "cut":
            track.append(otio.schema.Transition(
                name="crossfade", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=_time(0, fps), out_offset=_time(timeline.joins[index].frames(fps), fps)))
    return track


def _sound_track(sound: Sound, fps: int, film: int, available: int | None) -> otio.schema.Track | None:
    """One sound on a track of its own: a gap until its start, then its range of the file."""
    start, first = frames_of(sound.start, fps), frames_of(sound.in_, fps)
    end = frames_of(sound.out, fps) if sound.out is not None else available
    if end is None or start >= film:
        return None
    frames = min(end - first, film - start)
    if frames <= 0:
        return None
    track = otio.schema.Track(name=f"A {sound.name or Path(sound.path).stem}", kind=otio.schema.TrackKind.Audio)
    if start:
        track.append(otio.schema.Gap(source_range=_range(0, start, fps)))
    about = {"start": sound.start, "in": sound.in_, "out": sound.out, "gain_db": sound.gain_db,
             "fade_in": sound.fade_in, "fade_out": sound.fade_out, "duck": sound.duck, "sha256": sound.sha}
    track.append(otio.schema.Clip(name=sound.name or Path(sound.path).stem,
                                  media_reference=_reference(Path(sound.path), available or end, fps),
                                  source_range=_range(first, frames, fps), metadata={NAMESPACE: about}))
    return track
