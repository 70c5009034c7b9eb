"""Ctrl-C during a build is seen where the executor's loop can stop cleanly, never in the middle of
whatever the main thread was doing (a KeyboardInterrupt inside concurrent.futures' wait could leave
a future's lock held and hang the build)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from storyboard.executor import Cancelled

BOARD = """
[film]
provider = "fake"
duration = 4

[[shot]]
id = "slow"
prompt = "[hang] a lighthouse"
"""


def test_the_first_ctrl_c_is_seen_by_the_loop_not_inside_the_main_threads_work(write_board, fake_provider):
    from storyboard.build import build, open_project

    finished: list[str] = []

    def on_event(shot: str, state: str, info: dict) -> None:
        if state == "queued":  # the main thread is inside the build's own work when Ctrl-C comes
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)  # a KeyboardInterrupt raised here would cut this short
            finished.append(shot)

    before = signal.getsignal(signal.SIGINT)
    start = time.monotonic()
    with pytest.raises(Cancelled, match="interrupted"):
        build(open_project(write_board(BOARD)), on_event=on_event)
    assert finished == ["slow"]  # the callback ran to its end; the loop stopped the build after it
    assert time.monotonic() - start < 30  # the hanging render was cancelled, not waited for
    assert signal.getsignal(signal.SIGINT) is before  # the build's handler is gone again


def test_an_error_in_the_loop_stops_the_shots_in_flight(write_board, fake_provider):
    """Anything that ends the executor's loop (here the caller's callback failing) cancels the shots
    in flight, rather than the pool's exit waiting out their whole render."""
    from storyboard.build import build, open_project

    def on_event(shot: str, state: str, info: dict) -> None:
        if shot == "other" and state == "queued":  # said by the loop, with 'slow' in flight
            raise RuntimeError("the caller's display broke")

    board = BOARD + '\n[[shot]]\nid = "other"\nprompt = "a harbour"\n'
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="display broke"):
        build(open_project(write_board(board)), on_event=on_event)
    assert time.monotonic() - start < 30  # the fake's [hang] waits 600 s unless cancelled
