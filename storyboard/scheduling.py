"""When shots may start: the ready set, each provider's concurrency, and Ctrl-C seen where the
executor's loop can stop cleanly."""

from __future__ import annotations

import heapq
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storyboard.model import Board

class Limiter:
    """Per-provider concurrency; shared by every thread of one build."""

    def __init__(self, providers: dict[str, Any], board: Board, jobs: int) -> None:
        self._sems: dict[str, threading.Semaphore] = {}
        for name, impl in providers.items():
            settings = board.providers.get(name)
            limit = getattr(settings, "concurrency", None) or getattr(impl, "default_concurrency", jobs)
            self._sems[name] = threading.Semaphore(max(1, int(limit)))

    def __call__(self, provider: str) -> threading.Semaphore:
        return self._sems[provider]


POLL = 0.2
"""Seconds between the loop's looks at the Ctrl-C flag while shots render."""


@contextmanager
def ctrl_c_flag() -> Iterator[list[bool]]:
    """While shots render, the first Ctrl-C sets a flag the loop looks at, instead of raising
    KeyboardInterrupt wherever the main thread happens to be: raised inside concurrent.futures'
    wait, it can leave a future's lock held, and the worker that must finish that future then
    hangs the build for good. A second Ctrl-C raises at once, as before."""
    pressed = [False]
    if threading.current_thread() is not threading.main_thread():
        yield pressed  # an app running builds in a thread keeps its own handling (and `cancel`)
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if pressed[0]:
            signal.default_int_handler(signum, frame)
        pressed[0] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


class Schedule:
    """Which shots can start: a counter of missing upstream outputs per shot and a ready heap.

    Every edge is touched once when its upstream finishes and at most once when a shot is dropped,
    so a build of n shots schedules in O(n log n) rather than rescanning every waiting shot after each one.
    Ready shots start in `order` (the plan's topological order), as they always did.
    """

    def __init__(self, board: Board, order: list[str], outputs: dict[str, Any]) -> None:
        self._order = order
        self._index = {shot_id: i for i, shot_id in enumerate(order)}
        self._waiting: dict[str, int] = {}
        self._downstream: dict[str, list[str]] = {}
        self._ready: list[int] = []
        for i, shot_id in enumerate(order):
            missing = {up for up in board.shots[shot_id].upstream() if up not in outputs}
            self._waiting[shot_id] = len(missing)
            for up in missing:
                self._downstream.setdefault(up, []).append(shot_id)
            if not missing:
                self._ready.append(i)
        heapq.heapify(self._ready)
        self._pending = set(order)

    def next_ready(self) -> str | None:
        """The earliest shot in run order whose inputs all exist, taken off the pending set."""
        while self._ready:
            shot_id = self._order[heapq.heappop(self._ready)]
            if shot_id in self._pending:
                self._pending.discard(shot_id)
                return shot_id
        return None

    def again(self, shot_id: str) -> None:
        """Put a ready shot taken off the schedule back on it."""
        self._pending.add(shot_id)
        heapq.heappush(self._ready, self._index[shot_id])

    def finished(self, shot_id: str) -> None:
        """`shot_id` has its outputs: its dependants wait for one input fewer."""
        for down in self._downstream.get(shot_id, ()):
            self._waiting[down] -= 1
            if self._waiting[down] == 0 and down in self._pending:
                heapq.heappush(self._ready, self._index[down])

    def drop_descendants(self, failed: str) -> list[str]:
        """Take every still-pending shot downstream of `failed` off the schedule, in run order."""
        dropped, stack = [], [failed]
        while stack:
            for down in self._downstream.get(stack.pop(), ()):
                # a descendant no longer pending was dropped with its own descendants already
                if down in self._pending:
                    self._pending.discard(down)
                    dropped.append(down)
                    stack.append(down)
        return sorted(dropped, key=self._index.__getitem__)

    def left(self) -> list[str]:
        """The shots never started, in run order."""
        return sorted(self._pending, key=self._index.__getitem__)
