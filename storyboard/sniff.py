"""What a file is: its type on disk, and what its bytes say (never its name), decoded where it matters."""

from __future__ import annotations

import functools
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

_SPECIAL = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(mode: int) -> str | None:
    """'a named pipe (FIFO)', 'a folder', ... for anything but a regular file; None for a regular file."""
    for test, name in _SPECIAL:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def open_regular(path: Path) -> BinaryIO | None:
    """The file opened for reading, or None when it is not a regular file.

    Opened non-blocking and checked with fstat, so a named pipe swapped in never blocks the read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def sniff(path: Path) -> str | None:
    """'png', 'jpeg', 'mp4' or 'audio' (WAV, FLAC, MP3, ADTS AAC) from the magic bytes, or None (also for
    anything not a regular file). An M4A is 'mp4': its sound is checked where it is used."""
    try:
        fh = open_regular(path)
        if fh is None:
            return None
        with fh:
            head = fh.read(12)
    except OSError:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[4:8] == b"ftyp":
        return "mp4"
    if (head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head.startswith((b"fLaC", b"ID3")) or \
            (head[:1] == b"\xff" and head[1:2] and head[1] & 0xE0 == 0xE0):
        return "audio"
    return None


def image_problem(path: Path) -> str | None:
    """Why the image cannot be used ('is truncated', 'is too large'), or None once it decodes in full.

    Decoding every pixel at validation turns a broken picture into an error before anything is paid
    for. The result is memoised on (path, size, mtime) since a full decode of a large image is slow.
    """
    try:
        info = path.stat()
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    return _decode(str(path), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _decode(path: str, size: int, mtime_ns: int) -> str | None:
    from PIL import Image

    with warnings.catch_warnings():
        # Pillow only warns between its limit and twice it; an oversized picture is an error here
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            fh = open_regular(Path(path))
            if fh is None:
                return "is not a regular file"
            with fh, Image.open(fh) as image:
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            pixels = str(exc).split(" pixels")[0].split("(")[-1]
            return (f"is too large to decode safely ({pixels} pixels; at most {Image.MAX_IMAGE_PIXELS}); "
                    "scale it down")
        except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError) as exc:
            return f"cannot be decoded ({exc}); the file is truncated or corrupt: export it again"
    return None
