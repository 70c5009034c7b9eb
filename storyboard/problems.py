"""Every mistake in a storyboard file, each with its line, reported together in one error.

`SourceLines` finds the line of a table or key by scanning the TOML text (tomllib keeps no
positions); `Where` formats an error with it; `Problems` collects StoryboardFileErrors and raises one that lists them all, so
three mistakes cost one run, not three.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storyboard.errors import StoryboardFileError

MAX_SHOWN = 20

_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=\s*(.*)")
_PART = re.compile(_KEY)

_TABLE_PREFIX = re.compile(r"\[(\w+)(?:\.([\w-]+))?\]:?(?: field '([\w.]+)'| '([^']+)')?")

Path_ = tuple[str | int, ...]


class SourceLines:
    """Line numbers of the tables and keys of a TOML text, e.g. ("shot", 2, "duration") -> 14."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path_, int] = {}
        arrays: dict[Path_, int] = {}
        table: Path_ = ()
        closing: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if closing is not None:
                if closing in line:
                    closing = None
                continue
            if header := _ARRAY_HEADER.match(line):
                name = _parts(header.group(1))
                arrays[name] = arrays.get(name, -1) + 1
                table = (*self._within(name, arrays), arrays[name])
                self.lines.setdefault(table, number)
            elif header := _TABLE_HEADER.match(line):
                table = self._within(_parts(header.group(1)), arrays)
                self.lines.setdefault(table, number)
            elif pair := _KEY_LINE.match(line):
                key = (*table, *_parts(pair.group(1)))
                for end in range(len(table) + 1, len(key) + 1):
                    self.lines.setdefault(key[:end], number)
                value = pair.group(2)
                for quotes in ('"""', "'''"):
                    if value.startswith(quotes) and value.count(quotes) == 1:
                        closing = quotes

    @staticmethod
    def _within(name: tuple[str, ...], arrays: dict[Path_, int]) -> Path_:
        """`[shot.first_frame]` after the third `[[shot]]` is ("shot", 2, "first_frame")."""
        path: list[str | int] = []
        for part in name:
            path.append(part)
            if tuple(path) in arrays and len(path) < len(name):
                path.append(arrays[tuple(path)])
        return tuple(path)

    def line(self, *path: str | int) -> int | None:
        """The line of the longest prefix of `path` the text names, or None."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


class Where:
    """Formats 'file: line N: shot 'x': field 'y': message', finding N in the source text."""

    def __init__(self, path: Path, text: str, raw: dict[str, Any]) -> None:
        self.path = path
        self.text = text
        self._lines: SourceLines | None = None
        shots = raw.get("shot")
        self.shot_index: dict[str, int] = {}
        for i, entry in enumerate(shots if isinstance(shots, list) else []):
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                self.shot_index.setdefault(entry["id"], i)

    @property
    def lines(self) -> SourceLines:
        """Scanned on the first error only: a valid file never pays for it."""
        if self._lines is None:
            self._lines = SourceLines(self.text)
        return self._lines

    def error(self, message: str, shot: str | None = None, field: str | None = None,
              *, at: tuple[str | int, ...] | None = None) -> StoryboardFileError:
        """The error, its line found from `at`, else the shot and field, else a '[table] ...' message."""
        if at is None and shot is not None and shot in self.shot_index:
            at = ("shot", self.shot_index[shot], *(field.split(".") if field else ()))
        if at is None and (prefix := _TABLE_PREFIX.match(message)):
            at = tuple(p for p in (prefix.group(1), prefix.group(2), *(prefix.group(3) or "").split("."),
                                   prefix.group(4)) if p)
        line = self.lines.line(*at) if at else None
        parts = [str(self.path), *([f"line {line}"] if line else [])]
        if shot is not None:
            parts.append(f"shot '{shot}'" if shot.isprintable() else f"shot {shot!r}")
        if field is not None:
            parts.append(f"field '{field}'")
        exc = StoryboardFileError(": ".join(parts) + ": " + message)
        exc.line = line
        return exc


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART.findall(dotted))


class Problems:
    """StoryboardFileErrors collected while checking one file, raised together by `raise_any`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: list[tuple[int, str]] = []
        self.seen: set[str] = set()

    def __len__(self) -> int:
        return len(self.found)

    def add(self, exc: StoryboardFileError) -> None:
        """Record a problem once; its line orders the report (unknown lines go last).

        Raises:
            StoryboardFileError: the list, once a problem past MAX_SHOWN turns up: a file with
                thousands of mistakes is reported quickly, not after checking each of them.
        """
        if exc.message in self.seen:
            return
        if len(self.found) == MAX_SHOWN:
            self.raise_any(stopped=True)
        self.seen.add(exc.message)
        self.found.append((exc.line if exc.line is not None else 1 << 30, exc.message))

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Record a StoryboardFileError raised in the block, and go on after the block."""
        try:
            yield
        except StoryboardFileError as exc:
            self.add(exc)

    def raise_any(self, stopped: bool = False) -> None:
        """Raise one StoryboardFileError: the problem itself, or a list of them in file order."""
        if not self.found:
            return
        ordered = [message for _, message in sorted(self.found, key=lambda item: item[0])]
        if len(ordered) == 1:
            raise StoryboardFileError(ordered[0])
        shown = "\n".join(f"  {message}" for message in ordered)
        if stopped:
            raise StoryboardFileError(f"more than {MAX_SHOWN} problems in {self.path}; the first {MAX_SHOWN} "
                                      f"found:\n{shown}\n  ... and more: fix these and run again")
        raise StoryboardFileError(f"{len(ordered)} problems in {self.path}:\n{shown}")


def quote_line(text: str, line: int, column: int | None = None) -> str:
    """Line `line` of `text`, shortened and made printable, with a caret under `column`."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    source = lines[line - 1]
    start = max(0, (column or 1) - 60) if len(source) > 100 else 0
    shown = source[start:start + 100]
    printable = "".join(c if c.isprintable() or c == "\t" else "?" for c in shown).replace("\t", " ")
    quoted = f"\n    {'...' if start else ''}{printable}{'...' if start + 100 < len(source) else ''}"
    if column is not None:
        quoted += "\n    " + " " * (column - 1 - start + (3 if start else 0)) + "^"
    return quoted
