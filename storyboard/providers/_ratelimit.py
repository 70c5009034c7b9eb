"""The requests-per-minute limit a provider's threads share, counted when requests are sent."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class _Slot:
    """One request's place in the limiter: its planned send time until it is sent, then the real one."""

    __slots__ = ("at", "sent")

    def __init__(self, at: float) -> None:
        self.at = at
        self.sent = False

    def time(self, now: float) -> float:
        """When it is (or, if still waiting, will at the earliest be) sent."""
        return self.at if self.sent else max(self.at, now)


class RateLimiter:
    """At most `rpm` requests in any rolling minute, shared by every thread that calls acquire().

    Requests are counted when they are sent, not when they ask: each caller reserves a slot
    `rpm` places after the one before it (at least a minute later), sleeps outside the lock,
    then records the moment it really goes. A caller that overslept, or was held up, pushes
    the callers queued behind it back instead of letting them land in the same minute.
    `rpm` None or 0 means no limit.
    """

    def __init__(self, rpm: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._burst = max(1, int(rpm)) if rpm else 0
        self._period = 60.0 * self._burst / rpm if rpm else 0.0
        self._slots: deque[_Slot] = deque(maxlen=self._burst or 1)

    def acquire(self, sleep: Callable[[float], None] | None = None) -> float:
        """Wait for the next free slot (with `sleep`, default the limiter's); returns seconds waited.

        Call it right before sending: the moment it returns is counted as the send.
        """
        if not self._burst:
            return 0.0
        sleep = sleep or self._sleep
        with self._lock:
            now = self._clock()
            before = self._slots[0] if len(self._slots) == self._burst else None
            mine = _Slot(max(now, before.time(now) + self._period) if before else now)
            self._slots.append(mine)
            wait = mine.at - now
        waited = 0.0
        try:
            while wait > 0:
                sleep(wait)
                waited += wait
                with self._lock:
                    now = self._clock()
                    # the request `rpm` places ahead went later than planned (or has still not gone)
                    needed = before.time(now) + self._period if before else mine.at
                    wait = needed - now if needed > mine.at else 0.0
                    mine.at = max(mine.at, needed)
        except BaseException:  # cancelled: count it as planned, so it holds no one back for ever
            with self._lock:
                mine.sent = True
            raise
        with self._lock:
            mine.at = max(mine.at, self._clock())
            mine.sent = True
        return waited


__all__ = ["RateLimiter"]
