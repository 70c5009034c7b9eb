"""Build progress for people and machines.

    LiveReporter    a terminal: one live line per running shot and an overall bar (rich)
    PlainReporter   a pipe or a log: one line per state change
    JsonReporter    --json: one JSON object per event, for machines
    QuietReporter   --quiet: nothing until the summary

Reporters are called from worker threads as `reporter(shot, state, info)`. A shot's first event
carries `info["reason"]`, why it runs (plan's words); a shot that Ctrl-C stopped reports the state
`interrupted`, which people see once, as the CLI's last line, and machines see per shot.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

FINAL = {"done", "cached", "failed", "skipped", "interrupted"}


class PlainReporter:
    """One line per state change, safe to call from worker threads."""

    QUIET_STATES = {"queued", "rendering", "downloading", "submitted", "uploading"}

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._mutex = threading.Lock()
        self._last: dict[str, str] = {}

    def __call__(self, shot: str, state: str, info: dict[str, Any]) -> None:
        if state == "interrupted" or (self._last.get(shot) == state and state in self.QUIET_STATES):
            return
        self._last[shot] = state
        with self._mutex:
            # a cached shot is told at once, in a burst, before anything that takes time: the next
            # line flushes it (a no-op build of 1,000 shots made 1,000 writes)
            print(f"{shot}: {describe(state, info)}", file=self.out, flush=state != "cached")

    def film_step(self, message: str) -> None:
        with self._mutex:
            print(f"film: {message}", file=self.out, flush=True)

    def close(self) -> None:
        with self._mutex:
            self.out.flush()


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
    """A state in words: 'rendering 40%', 'rendered in 2.1 s', 'failed: ...', 'queued — prompt changed'."""
    text = _describe(state, info)
    return f"{text} — {info['reason']}" if info.get("reason") else text


def _describe(state: str, info: dict[str, Any]) -> str:
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
        self._reasons: dict[str, str] = {}
        self._film = ""
        self._live = Live(self._render(), console=console, refresh_per_second=8, transient=True,
                          get_renderable=self._render)
        self._live.start()

    def __call__(self, shot: str, state: str, info: dict[str, Any]) -> None:
        with self._mutex:
            if info.get("reason"):
                self._reasons[shot] = info["reason"]
            if state in FINAL:
                self._running.pop(shot, None)
                self.finished += 1
                reason = self._reasons.pop(shot, None)
                if state == "interrupted":
                    return
                style = {"failed": "red", "skipped": "yellow", "cached": "dim"}.get(state, "green")
                said = describe(state, {**info, "reason": reason if state != "cached" else None})
                self.console.print(f"[{style}]{shot}: {said}[/]", highlight=False)
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
                said = describe(state, {**info, "reason": self._reasons.get(shot)})
                table.add_row(shot, said, f"{now - started:5.1f} s")
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


_CTRL_C_DEATH = re.compile(r"ffmpeg (was killed by signal 2|failed with exit code 255)\b")
"""How an ffmpeg that Ctrl-C reached dies: of SIGINT, or by exiting 255 as ffmpeg does on it."""


def interrupted_as_such(on_event: Callable[[str, str, dict[str, Any]], None],
                        interrupted: Callable[[], bool],
                        settle: Callable[[], bool] | None = None) -> Callable[[str, str, dict[str, Any]], None]:
    """Report a shot that fails or is skipped after Ctrl-C as `interrupted`, not as a failure.

    Ctrl-C reaches the shots' ffmpeg and provider calls too; their deaths ("ffmpeg failed with exit
    code 255") are the interruption, not something for the user to fix. A shot whose ffmpeg died
    that way may report before the same Ctrl-C reaches storyboard: `settle` then waits a moment for
    it and says whether it came.
    """

    def by_ctrl_c(state: str, info: dict[str, Any]) -> bool:
        if interrupted():
            return True
        died = state == "failed" and _CTRL_C_DEATH.search(str(info.get("error", ""))) is not None
        return died and settle is not None and settle()

    def report(shot: str, state: str, info: dict[str, Any]) -> None:
        if state in ("failed", "skipped") and by_ctrl_c(state, info):
            state, info = "interrupted", {**info, "was": state}
        on_event(shot, state, info)

    return report


class InterruptWatch:
    """Whether Ctrl-C was pressed, known at once in every thread.

    Python runs the SIGINT handler in the main thread only, when it next runs Python code; a worker
    whose ffmpeg the same Ctrl-C killed may report first. The C-level handler writes the signal's
    number to the wakeup fd as soon as a thread takes the signal, so any thread can ask. On a busy
    machine the thread the kernel chose may run after the worker that saw its ffmpeg die, so a
    failure is judged after a short `grace` for the signal to land.
    """

    def __init__(self) -> None:
        self.seen = False
        self._fds: tuple[int, int] | None = os.pipe()
        for fd in self._fds:
            os.set_blocking(fd, False)
        try:
            self._previous = signal.set_wakeup_fd(self._fds[1], warn_on_full_buffer=False)
        except ValueError:  # not the main thread (an app embedding storyboard): the executor's flag only
            for fd in self._fds:
                os.close(fd)
            self._fds = None

    def __call__(self, grace: float = 0.0) -> bool:
        """Whether Ctrl-C was pressed, waiting up to `grace` seconds for a signal on its way."""
        if not self.seen and self._fds is not None:
            if grace:
                import select

                select.select([self._fds[0]], [], [], grace)
            try:
                self.seen = signal.SIGINT in os.read(self._fds[0], 512)
            except (BlockingIOError, OSError):
                pass
        return self.seen

    def close(self) -> None:
        if self._fds is not None:
            signal.set_wakeup_fd(self._previous)
            for fd in self._fds:
                os.close(fd)
            self._fds = None


SHA = re.compile(r"\b([0-9a-f]{8,64})\b(?:…|\.\.\.)?(?:\.mp4\b)?")
CLIP_OF = re.compile(r"\bclip (\d+)/(\d+)(?: \([^)]*\))?")
CLIP_PAIR = re.compile(r"\bclip (\d+) -> clip (\d+)")
TMP_FILM = re.compile(r"\btmp[\w-]*\.mp4\b")


def name_film_steps(on_step: Callable[[str], None], sequence: list[str], clips: list[str],
                    film: str) -> Callable[[str], None]:
    """Pass the stitcher's steps on in the user's words: shot ids, not clip hashes or temp files.

    `sequence` and `clips` are the film's shots and their clips' sha256, in film order; `film` is
    the output's file name. "conform clip 1/4 (a77e7972….mp4)" becomes "conform arrival (clip 1/4)".
    """
    names: dict[str, list[str]] = {}
    for shot, sha in zip(sequence, clips):
        if shot not in names.setdefault(sha, []):
            names[sha].append(shot)

    def shot_at(number: str) -> str:
        index = int(number) - 1
        return sequence[index] if 0 <= index < len(sequence) else f"clip {number}"

    def shot_of(match: re.Match[str]) -> str:
        found = [shots for sha, shots in names.items() if sha.startswith(match[1])]
        return "/".join(found[0]) if len(found) == 1 else match.group(0)

    def say(message: str) -> None:
        message = CLIP_PAIR.sub(lambda m: f"{shot_at(m[1])} -> {shot_at(m[2])}", message)
        message = CLIP_OF.sub(lambda m: f"{shot_at(m[1])} (clip {m[1]}/{m[2]})", message)
        message = TMP_FILM.sub(film, SHA.sub(shot_of, message))
        on_step(message)

    return say
