"""Build progress for people and machines.

    LiveReporter    a terminal: one live line per running shot and an overall bar (rich)
    PlainReporter   a pipe or a log: one line per state change
    JsonReporter    --json: one JSON object per event, for machines
    QuietReporter   --quiet: nothing until the summary

Reporters are called from worker threads as `reporter(shot, state, info)`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, TextIO

FINAL = {"done", "cached", "failed", "skipped"}


class PlainReporter:
    """One line per state change, safe to call from worker threads."""

    QUIET_STATES = {"queued", "rendering", "downloading", "submitted", "uploading"}

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._mutex = threading.Lock()
        self._last: dict[str, str] = {}

    def __call__(self, shot: str, state: str, info: dict[str, Any]) -> None:
        if self._last.get(shot) == state and state in self.QUIET_STATES:
            return
        self._last[shot] = state
        with self._mutex:
            print(f"{shot}: {describe(state, info)}", file=self.out, flush=True)

    def film_step(self, message: str) -> None:
        with self._mutex:
            print(f"film: {message}", file=self.out, flush=True)

    def close(self) -> None:
        pass


class QuietReporter(PlainReporter):
    """Nothing but failures."""

    def __call__(self, shot: str, state: str, info: dict[str, Any]) -> None:
        return

    def film_step(self, message: str) -> None:
        return


class JsonReporter(PlainReporter):
    """A JSON object per event: {"shot", "state", "time", ...info}."""

    def __call__(self, shot: str, state: str, info: dict[str, Any]) -> None:
        event = {"event": "shot", "shot": shot, "state": state, "time": round(time.time(), 3), **info}
        with self._mutex:
            print(json.dumps(event, default=str), file=self.out, flush=True)

    def film_step(self, message: str) -> None:
        with self._mutex:
            print(json.dumps({"event": "film", "step": message, "time": round(time.time(), 3)}),
                  file=self.out, flush=True)


def describe(state: str, info: dict[str, Any]) -> str:
    """A state in words: 'rendering 40%', 'rendered in 2.1 s', 'failed: ...'."""
    if state == "done":
        return f"rendered in {info.get('seconds', 0):.1f} s"
    if state == "failed":
        return f"failed: {info.get('error')}"
    if state == "skipped":
        return f"skipped (upstream '{info.get('because')}' failed)"
    if state == "waiting":
        return f"waiting: held by {info.get('holder')}"
    if info.get("fraction") is not None:
        return f"{state} {info['fraction'] * 100:.0f}%"
    return state


class LiveReporter:
    """A live panel: one line per running shot with its state and elapsed time, and an overall bar."""

    def __init__(self, console: Any, total: int) -> None:
        from rich.live import Live

        self.console = console
        self.total = total
        self.finished = 0
        self._mutex = threading.Lock()
        self._running: dict[str, tuple[str, dict[str, Any], float]] = {}
        self._film = ""
        self._live = Live(self._render(), console=console, refresh_per_second=8, transient=True,
                          get_renderable=self._render)
        self._live.start()

    def __call__(self, shot: str, state: str, info: dict[str, Any]) -> None:
        with self._mutex:
            if state in FINAL:
                self._running.pop(shot, None)
                self.finished += 1
                style = {"failed": "red", "skipped": "yellow", "cached": "dim"}.get(state, "green")
                self.console.print(f"[{style}]{shot}: {describe(state, info)}[/]", highlight=False)
            else:
                started = self._running.get(shot, (state, info, time.monotonic()))[2]
                self._running[shot] = (state, info, started)

    def film_step(self, message: str) -> None:
        with self._mutex:
            self._film = message

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        with self._mutex:
            for shot, (state, info, started) in sorted(self._running.items()):
                table.add_row(shot, describe(state, info), f"{now - started:5.1f} s")
            if self._film:
                table.add_row("film", self._film, "")
            done = self.finished
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=max(self.total, 1), completed=done, width=40), f"{done}/{self.total} shots")
        outer = Table.grid()
        outer.add_row(table)
        outer.add_row(bar)
        return outer

    def close(self) -> None:
        self._live.stop()
