"""The no-op fast path: a build stamp that proves, with stats alone, that nothing changed.

After a complete build the stamp records the storyboard's bytes hash and the (size, mtime_ns)
of every file the build read or produced: assets, the lock, the film and every cache object the
lock pins. If all of them are unchanged, the build would do nothing, so `storyboard build`
answers without importing pydantic, networkx or jinja2 (ninja's manifest + log check). Any
difference, or any doubt, falls through to the full build, which re-checks everything.
Stdlib only: this module runs before anything heavy is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

STAMP_VERSION = 1


def _stamp_path(cache_dir: Path, board: Path, provider: str | None) -> Path:
    ident = hashlib.sha256(f"{board.resolve()}\0{provider or ''}".encode()).hexdigest()[:32]
    return cache_dir / "stamps" / f"{ident}.json"


def _stat(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def write_stamp(cache_dir: Path, board: Path, provider: str | None, files: list[Path],
                summary: dict[str, Any], version: str) -> None:
    """Record what a complete, successful build read and wrote."""
    from storyboard.cache import atomic_write_json

    entry = {
        "v": STAMP_VERSION,
        "version": version,
        "board": hashlib.sha256(board.read_bytes()).hexdigest(),
        "files": {str(p): _stat(p) for p in files},
        "summary": summary,
    }
    try:
        atomic_write_json(_stamp_path(cache_dir, board, provider), entry)
    except OSError:
        pass  # the stamp only saves time; a build without it is still correct


def check_stamp(cache_dir: Path, board: Path, provider: str | None, version: str) -> dict[str, Any] | None:
    """The recorded summary if nothing the last build touched has changed, else None."""
    try:
        entry = json.loads(_stamp_path(cache_dir, board, provider).read_bytes())
        if entry.get("v") != STAMP_VERSION or entry.get("version") != version:
            return None
        if hashlib.sha256(board.read_bytes()).hexdigest() != entry["board"]:
            return None
        for path, stat in entry["files"].items():
            if stat is None or _stat(Path(path)) != stat:
                return None
        return entry["summary"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def try_noop(argv: list[str]) -> bool:
    """Answer `storyboard build [FILE] [--jobs N] [--keep-going] [--cache-dir D] [--yes] [--budget USD]`.

    FILE defaults to ./storyboard.toml, as in the CLI. Consent flags change nothing when nothing
    runs. Returns True when it printed the result; False means: run the full build.
    """
    if not argv or argv[0] != "build":
        return False
    rest = argv[1:]
    board = cache_dir = None
    while rest:
        arg = rest.pop(0)
        if arg in ("--jobs", "-j", "--budget") and rest:
            rest.pop(0)
        elif arg in ("--keep-going", "-k", "--yes", "-y", "--verbose", "-v"):
            continue
        elif arg == "--cache-dir" and rest:
            cache_dir = Path(rest.pop(0))
        elif not arg.startswith("-") and board is None:
            board = Path(arg)
        else:
            return False
    board = board or Path("storyboard.toml")
    from storyboard import __version__

    env = os.environ.get("STORYBOARD_CACHE")
    cache_dir = cache_dir or (Path(env) if env else board.parent / ".storyboard")
    summary = check_stamp(cache_dir, board, None, __version__)
    if summary is None:
        return False
    print(f"summary: {summary['shots']} cached (nothing changed since the last build)")
    print(f"film: {summary['film']} ({summary['duration']:.2f} s, up to date)")
    return True
