"""sniff(path): what a media file is by its first bytes, not its name."""

from __future__ import annotations

from pathlib import Path


def sniff(path: Path) -> str | None:
    """'png', 'jpeg' or 'mp4' from the magic bytes, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[4:8] == b"ftyp":
        return "mp4"
    return None
