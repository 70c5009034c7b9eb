"""The providers that installed packages register, read without importing importlib.metadata.

`importlib.metadata` imports the email package to read every distribution's METADATA, ≈ 15 ms
of CPU in every command that opens a board (a tenth of a 1,000-shot plan's budget), though
only each distribution's `entry_points.txt` matters here. So they are read as its path finder
reads them: the `*.dist-info` and `*.egg-info` folders of each folder on the search path, in
order, the first distribution of a name winning (tests/providers/test_plugins.py checks that
both readings agree). A zipped distribution on the path is left to importlib.metadata.
"""

from __future__ import annotations

import os
import re

_SUFFIXES = (".dist-info", ".egg-info")


def entry_points(group: str, search_path: tuple[str, ...]) -> list[tuple[str, str]] | None:
    """(name, value) of every entry point in `group`, as `importlib.metadata.entry_points(group=)` lists
    them; None when the path holds a zip file, whose distributions only importlib.metadata reads."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for folder in search_path:
        folder = folder or "."
        try:
            names = os.listdir(folder)
        except NotADirectoryError:  # a zip file
            return None
        except OSError:  # a folder that is gone: importlib.metadata finds nothing there either
            continue
        for name in names:
            if not name.lower().endswith(_SUFFIXES):
                continue
            distribution = _normalized(name.rpartition(".")[0].partition("-")[0])
            if distribution in seen:
                continue
            seen.add(distribution)
            found += _group(os.path.join(folder, name, "entry_points.txt"), group)
    return found


def _normalized(name: str) -> str:
    """A distribution's name as importlib.metadata compares them (PEP 503, then `_` for `-`)."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _group(path: str, group: str) -> list[tuple[str, str]]:
    """The `name = value` lines of `[group]` in an entry_points.txt (an INI file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    entries, inside = [], False
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
        elif inside and "=" in line:
            name, _, value = line.partition("=")
            entries.append((name.strip(), value.strip()))
    return entries
