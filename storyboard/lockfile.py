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
        except (OSError, ValueError):
            data = {}
        self.shots: dict[str, dict[str, Any]] = data.get("shots", {})
        self.film: dict[str, Any] = data.get("film", {})

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
