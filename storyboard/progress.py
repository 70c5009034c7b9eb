"""Build progress for people: plain lines when stdout is not a terminal."""

from __future__ import annotations

import threading
from typing import Any, TextIO


class PlainReporter:
    """One line per state change, safe to call from worker threads."""

    QUIET_STATES = {"queued", "rendering", "downloading", "submitted"}

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._mutex = threading.Lock()
        self._last: dict[str, str] = {}

    def __call__(self, shot: str, state: str, info: dict[str, Any]) -> None:
        if self._last.get(shot) == state and state in self.QUIET_STATES:
            return
        self._last[shot] = state
        detail = ""
        if state == "done":
            state, detail = "rendered", f" in {info.get('seconds', 0):.1f} s"
        elif state == "failed":
            detail = f": {info.get('error')}"
        elif state == "skipped":
            detail = f" (upstream '{info.get('because')}' failed)"
        elif state == "waiting":
            detail = f": held by {info.get('holder')}"
        elif info.get("fraction") is not None:
            detail = f" {info['fraction'] * 100:.0f}%"
        with self._mutex:
            print(f"{shot}: {state}{detail}", file=self.out, flush=True)

    def film_step(self, message: str) -> None:
        with self._mutex:
            print(f"film: {message}", file=self.out, flush=True)
