"""The edit's input files: sounds and subtitles read from inside the board's folder, checked by content.

A storyboard is untrusted, so a file it names for reading must be a regular file inside its folder
(no absolute path, no `..`, no symbolic link out), of bounded size, and what its bytes say: PyAV
decodes a sound as WAV, MP3, AAC/M4A or FLAC; pysubs2 parses subtitles. Used at load (the rules)
and again by `resolve`, which hashes the same files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.errors import StoryboardFileError, did_you_mean
from storyboard.problems import escape_controls

if TYPE_CHECKING:
    from storyboard.edit.timeline import Cue

MAX_SOUND_BYTES = 1 << 30
MAX_SUBTITLE_BYTES = 4 << 20
MAX_CUES = 10_000
AUDIO_FORMATS = {"wav", "mp3", "mov", "mp4", "m4a", "flac", "aac"}
AUDIO_CODECS = {"mp3", "mp3float", "aac", "flac", "alac"}


def readable(root: Path, value: str, what: str, limit: int = MAX_SOUND_BYTES) -> Path:
    """The real path of file `value` inside the board's folder `root`, checked to be a regular file.

    Raises:
        OutsideError: the path is absolute or leads outside the folder (`..`, a symbolic link).
        StoryboardFileError: the file is missing (with a did-you-mean), not a regular file, or too big.
    """
    from storyboard.sandbox import OutsideError, check_shape
    from storyboard.sniff import special_kind

    if (reason := check_shape(value)) is not None:
        raise OutsideError(f"{what}: '{escape_controls(value)}' {reason}")
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root / value))
    if not real.is_relative_to(real_root):
        raise OutsideError(f"{what}: '{value}' leads outside the storyboard's folder (to {real}); copy the file "
                           "inside the folder")
    try:
        info = os.stat(real)
    except FileNotFoundError:
        nearby = sorted(p.name for p in real.parent.iterdir()) if real.parent.is_dir() else []
        hint = did_you_mean(real.name, nearby)
        raise StoryboardFileError(f"{what}: file '{value}' not found{hint}") from None
    except OSError as exc:
        raise StoryboardFileError(f"{what}: '{value}' cannot be read: {exc.strerror}") from None
    if (kind := special_kind(info.st_mode)) is not None:
        raise StoryboardFileError(f"{what}: '{value}' is {kind}, not a file")
    if info.st_size > limit:
        raise StoryboardFileError(f"{what}: '{value}' is {info.st_size >> 20} MiB; at most {limit >> 20} MiB")
    return real


def audio_seconds(path: Path, what: str) -> float:
    """How long an audio file is, once PyAV has opened it as WAV, MP3, AAC/M4A or FLAC and decoded sound.

    Raises:
        StoryboardFileError: anything else (named by `what` and the file), or a file that does not decode.
    """
    import av

    bad = (f"{what}: '{path.name}' is not a WAV, MP3, AAC/M4A or FLAC sound file (checked by its content, not "
           "its name)")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            formats = set(container.format.name.split(","))
            streams = [s for s in container.streams if s.type == "audio"]
            moving = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if not formats & AUDIO_FORMATS or not streams or moving:
                raise StoryboardFileError(bad + (" (it has pictures: give the sound alone)" if moving else ""))
            stream = streams[0]
            codec = stream.codec_context.name
            if codec not in AUDIO_CODECS and not codec.startswith("pcm_"):
                raise StoryboardFileError(f"{bad} (its sound is {codec})")
            frame = next(container.decode(stream), None)
            if frame is None:
                raise StoryboardFileError(f"{what}: '{path.name}' holds no sound")
            if container.duration is not None:
                return container.duration / 1_000_000
            return float(stream.duration * stream.time_base) if stream.duration else 0.0
    except StoryboardFileError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, StopIteration) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__  # not str(exc): it repeats the full path
        raise StoryboardFileError(f"{bad}: {reason}") from None


def sound_path(board: Any, sound: Any, what: str) -> Path:
    """Where a `[[edit.sound]]` file is: its `path` inside the folder, or its asset's path."""
    if sound.asset is not None:
        asset = board.assets.get(sound.asset)
        if asset is None or asset.path is None:
            raise StoryboardFileError(f"{board.path}: {what}: unknown asset '{sound.asset}'"
                                      f"{did_you_mean(sound.asset, board.assets)}")
        return asset.path
    return readable(board.root, sound.path, f"{board.path}: {what}: field 'path'")


def read_subtitles(path: Path, what: str) -> tuple[Cue, ...]:
    """The cues of an SRT or WebVTT file (pysubs2), at most MAX_CUES.

    Raises:
        StoryboardFileError: the file is too big, does not parse, or holds no cue.
    """
    from storyboard.edit.subtitles import read_cues

    if path.stat().st_size > MAX_SUBTITLE_BYTES:
        raise StoryboardFileError(f"{what}: '{path.name}' is larger than {MAX_SUBTITLE_BYTES >> 20} MiB")
    try:
        cues = read_cues(path)
    except StoryboardFileError as exc:  # the subtitle reader's own report, which names the file by its path
        detail = exc.message.replace(f"{path}:", "", 1).strip()
        raise StoryboardFileError(f"{what}: '{path.name}' is not an SRT or WebVTT file that parses: "
                                  f"{detail}") from None
    except Exception as exc:  # noqa: BLE001 - pysubs2 raises many kinds on untrusted text; all mean "does not parse"
        raise StoryboardFileError(f"{what}: '{path.name}' is not an SRT or WebVTT file that parses "
                                  f"({type(exc).__name__}: {str(exc)[:120]})") from None
    if not cues:
        raise StoryboardFileError(f"{what}: '{path.name}' holds no subtitles")
    if len(cues) > MAX_CUES:
        raise StoryboardFileError(f"{what}: '{path.name}' holds {len(cues)} subtitles; at most {MAX_CUES}")
    return cues
