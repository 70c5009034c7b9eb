"""Which file a URL may name, and the bytes of it a Range asks for.

The review room serves three places and nothing else: the board's folder (`/files/...`), the
folder the film is written to (`/build/...`) and the cache, by content digest (`/media/<sha>`).
A URL path is untrusted, whoever typed it, so it is decoded once and then refused when any
part of it is empty, `.` or `..`, starts with a dot (`.env`, `.git`, the cache's own folder),
holds a backslash or a NUL, or when the real path (every symlink followed) leaves the root.
Only regular files of the media and text types below are served, opened without blocking.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

CONTENT_TYPES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif",
    ".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac",
    ".srt": "text/plain; charset=utf-8", ".vtt": "text/vtt; charset=utf-8",
    ".toml": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
"""What may be served, by name; anything else is 404 (a key file has no business on this page)."""

SNIFFED = {"mp4": "video/mp4", "png": "image/png", "jpeg": "image/jpeg"}
"""Cache objects have no names: their type is read from their bytes."""

_SHA = re.compile(r"[0-9a-f]{64}")


def safe_relative(url_path: str) -> str | None:
    """The relative path a URL's (still %-encoded) tail names, or None when it may not name one."""
    try:
        decoded = unquote(url_path, errors="strict") if "%" in url_path else url_path
    except UnicodeDecodeError:
        return None
    if not decoded or "\x00" in decoded or "\\" in decoded or decoded.startswith("/"):
        return None
    parts = decoded.split("/")
    if any(not p or p.startswith(".") for p in parts):
        return None
    return decoded


def resolve_under(root: Path, url_path: str) -> Path | None:
    """The file `url_path` names inside `root` (symlinks followed and still inside), or None."""
    relative = safe_relative(url_path)
    if relative is None or Path(relative).suffix.lower() not in CONTENT_TYPES:
        return None
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        return None
    return Path(real)


def object_under(cache_root: Path, sha: str) -> Path | None:
    """The cache object `sha` (symlinks followed and still inside the cache), or None."""
    if not is_sha(sha):
        return None
    real_root = os.path.realpath(cache_root)
    real = os.path.realpath(os.path.join(real_root, "objects", sha[:2], sha))
    return Path(real) if os.path.commonpath([real_root, real]) == real_root and real != real_root else None


def is_sha(text: str) -> bool:
    return bool(_SHA.fullmatch(text))


def content_type(path: Path, sniffed: str | None = None) -> str:
    if sniffed is not None:
        return SNIFFED.get(sniffed, "application/octet-stream")
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


@dataclass(frozen=True)
class Slice:
    """The part of a file to send: bytes start..end inclusive, of size."""

    start: int
    end: int
    size: int
    partial: bool

    @property
    def length(self) -> int:
        return self.end - self.start + 1 if self.size else 0


class Unsatisfiable(Exception):
    """A Range none of whose bytes exist (416)."""


def byte_range(header: str | None, size: int) -> Slice:
    """The slice a `Range:` header asks of a file of `size` bytes; the whole file when it asks none.

    One range is honoured (`bytes=a-b`, `bytes=a-`, `bytes=-n`), as browsers ask when they seek;
    several ranges or a malformed header get the whole file, which RFC 9110 allows.
    """
    whole = Slice(0, max(size - 1, 0), size, False)
    if not header:
        return whole
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None or match.group(1) == match.group(2) == "":
        return whole
    first, last = match.group(1), match.group(2)
    if first == "":  # the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return Slice(max(size - n, 0), size - 1, size, True)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise Unsatisfiable
    return Slice(start, end, size, True)


def open_file(path: Path):  # noqa: ANN201 - a binary file object
    """`path` opened for reading when it is a regular file (a FIFO swapped in never blocks), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
