"""storyboard.lock: per shot, the key, its components, the clip it produced and what it cost.

Commit it beside the storyboard: with the same cache (or a remote one), a teammate rebuilds
the identical film without paying, and `plan` explains every rerun against it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from storyboard.cache import atomic_write_bytes

LOCK_VERSION = 1


def _well_formed(entry: Any) -> bool:
    """An entry as _save wrote it: a table whose digests are strings and whose components are a table."""
    return (isinstance(entry, dict)
            and all(isinstance(entry.get(k, ""), str) for k in ("key", "sha", "clip", "first", "last", "output"))
            and isinstance(entry.get("components", {}), dict)
            and isinstance(entry.get("handle") or {}, dict))


def lock_path(board_path: Path) -> Path:
    return board_path.with_name("storyboard.lock") if board_path.name == "storyboard.toml" \
        else board_path.with_suffix(".lock")


class LockFile:
    """The lock's contents, rewritten atomically after every finished shot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):
            data = {}
        # the lock is committed, so as untrusted as the board: what is not of the shape we wrote is
        # forgotten (its shots are planned as new), never a crash later
        data = data if isinstance(data, dict) else {}
        shots, film = data.get("shots"), data.get("film")
        self.shots: dict[str, dict[str, Any]] = {
            shot: entry for shot, entry in (shots.items() if isinstance(shots, dict) else ()) if _well_formed(entry)}
        self.film: dict[str, Any] = film if isinstance(film, dict) and _well_formed(film) else {}

    def record_shot(self, shot_id: str, entry: dict[str, Any]) -> None:
        with self._mutex:
            self.shots[shot_id] = entry
            self._save()

    def record_film(self, entry: dict[str, Any]) -> None:
        with self._mutex:
            self.film = entry
            self._save()

    def prune(self, keep: set[str]) -> None:
        """Drop shots no longer in the storyboard."""
        with self._mutex:
            gone = set(self.shots) - keep
            if gone:
                for shot_id in gone:
                    del self.shots[shot_id]
                self._save()

    def _save(self) -> None:
        data = {"version": LOCK_VERSION, "shots": dict(sorted(self.shots.items())), "film": self.film}
        atomic_write_bytes(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
