"""The build's progress output: live panel on a terminal, plain lines, JSON events, quiet."""

from __future__ import annotations

import io
import json

from rich.console import Console

from storyboard.progress import JsonReporter, LiveReporter, PlainReporter, QuietReporter, describe


def test_describe_states():
    assert describe("rendering", {"fraction": 0.4}) == "rendering 40%"
    assert describe("done", {"seconds": 2.06}) == "rendered in 2.1 s"
    assert describe("failed", {"error": "blocked"}) == "failed: blocked"
    assert describe("skipped", {"because": "a"}) == "skipped (upstream 'a' failed)"
    assert describe("waiting", {"holder": "pid 7"}) == "waiting: held by pid 7"


def test_live_reporter_shows_running_shots_and_the_overall_bar():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    live = LiveReporter(console, total=3)
    live("a", "queued", {})
    live("a", "rendering", {"fraction": 0.5})
    live("b", "submitted", {})
    panel = io.StringIO()
    Console(file=panel, width=100, color_system=None).print(live._render())
    text = panel.getvalue()
    assert "a  rendering 50%" in text and "b  submitted" in text and "0/3 shots" in text
    live("a", "done", {"seconds": 1.0})
    live.film_step("join 3 segments")
    panel = io.StringIO()
    Console(file=panel, width=100, color_system=None).print(live._render())
    assert "a  " not in panel.getvalue() and "1/3 shots" in panel.getvalue()
    assert "film  join 3 segments" in panel.getvalue()
    live.close()
    assert "a: rendered in 1.0 s" in out.getvalue()


def test_plain_lines_skip_repeated_progress_states():
    out = io.StringIO()
    plain = PlainReporter(out)
    for state, info in [("queued", {}), ("rendering", {}), ("rendering", {}), ("done", {"seconds": 3})]:
        plain("a", state, info)
    assert out.getvalue().splitlines() == ["a: queued", "a: rendering", "a: rendered in 3.0 s"]


def test_json_and_quiet():
    out = io.StringIO()
    JsonReporter(out)("a", "failed", {"error": "x"})
    event = json.loads(out.getvalue())
    assert (event["event"], event["shot"], event["state"], event["error"]) == ("shot", "a", "failed", "x")
    quiet = io.StringIO()
    QuietReporter(quiet)("a", "done", {})
    assert quiet.getvalue() == ""
