"""`storyboard build` from an opened project to its exit status, without typer.

The typer command (storyboard.cli.building) and the console entry point's plain
``build [FILE] [--jobs N] [--cache-dir DIR] [--keep-going] [--yes] [--quiet] [--json]``
(storyboard.entry) both run this: a no-op build without the stamp spent ≈ 0.2 s of CPU importing
typer and parsing its options. What differs is how they print, ask and exit: ``echo``, ``confirm``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

FAILED, DECLINED = 1, 4
"""cli.Exit's statuses: a shot failed; the user said no to the cost question."""

_GRACE = 0.3
"""Seconds a failing shot waits for a Ctrl-C that killed its ffmpeg to reach storyboard too."""

Echo = Callable[[str, bool], None]
"""echo(message, to_stderr)."""


def open_for_cli(file: Any, cache_dir: Any, provider: str | None = None, remote: str | None = None,
                 no_remote: bool = False, require_remote: bool = False, allow_outside: bool = False) -> Any:
    """Load the project, say the board's warnings, and attach the team's remote cache, if any
    (the typer commands and the plain entry point open a board the same way)."""
    from storyboard.build import attach_remote, locate_board, open_project

    project = open_project(locate_board(file), cache_dir=cache_dir, provider=provider,
                           allow_outside=allow_outside)
    for warning in project.board.warnings:  # the edit's (a cue past the end, content playing twice)
        print(f"storyboard: warning: {warning}", file=sys.stderr)
    attach_remote(project, remote, no_remote=no_remote, required=require_remote,
                  warn=lambda message: print(f"storyboard: warning: {message}", file=sys.stderr))
    return project


def run(project: Any, *, only: list[str] | None = None, jobs: int = 4, keep_going: bool = False,
        provider: str | None = None, budget: float | None = None, yes: bool = False, quiet: bool = False,
        json_out: bool = False, resubmit: list[str] | None = None, force: list[str] | None = None,
        echo: Echo, confirm: Callable[[str, bool], bool],
        on_watch: Callable[[Callable[[], bool]], None] = lambda interrupted: None) -> int:
    """Plan, ask, build and report; the exit status (0, FAILED or DECLINED).

    `confirm(question, to_stderr)` asks at a terminal; `on_watch` is handed the function that
    says whether the build was interrupted (the CLI's error handling asks it).
    """
    import threading

    from storyboard import progress
    from storyboard.build import build as run_build
    from storyboard.build import check_shot_names, plan_project, select
    from storyboard.errors import MissingKeyError
    from storyboard.plan_view import view

    if resubmit:
        check_shot_names(project, "--resubmit", resubmit)  # before the cost question, not after it
    if force:
        from storyboard.takes import force_batches

        force_batches(project, force)
    steps, planned = plan_project(project)
    wanted = set(select(project, only)) if only else None
    pv = view(project, [s for s in steps if wanted is None or s.shot in wanted], jobs)
    import gc

    gc.enable()  # the entry point pauses the collector while loading and planning; a build may run for hours
    blocking = [p for p in pv.problems if not p.startswith(("note:", "warning:"))]
    if blocking:
        raise MissingKeyError(blocking[0] + "; nothing was run")
    for note in pv.problems:
        if not quiet and not json_out:
            echo(note, True)
    if not _agreed(pv, budget=budget, yes=yes, json_out=json_out, confirm=confirm):
        echo("storyboard: nothing was generated", True)
        return DECLINED
    reporter = _reporter(quiet, json_out, total=len(wanted) if wanted else len(project.order))
    cancel = threading.Event()
    watch = progress.InterruptWatch()
    interrupted = lambda: watch() or cancel.is_set()  # noqa: E731
    on_watch(interrupted)
    try:
        report = run_build(project, only=only, jobs=jobs, keep_going=keep_going,
                           on_event=progress.interrupted_as_such(reporter, interrupted,
                                                                 settle=lambda: watch(grace=_GRACE)),
                           cancel=cancel, on_film_step=reporter.film_step, provider=provider, resubmit=resubmit,
                           planned=(steps, planned))
    finally:
        reporter.close()
        watch.close()
    _summarise(project, report, only, json_out, echo)
    return FAILED if report.failed else 0


def _summarise(project: Any, report: Any, only: list[str] | None, json_out: bool, echo: Echo) -> None:
    from storyboard.build import why_no_film
    from storyboard.executor import Outcome

    counts = {o.value: report.count(o) for o in Outcome if report.count(o)}
    no_film = why_no_film(project, report, only)
    if json_out:
        import json

        echo(json.dumps({"event": "summary", **counts, "failed_shots": {r.shot: r.error for r in report.failed},
                         "warnings": {r.shot: r.warning for r in report.shots.values() if r.warning},
                         "film": str(report.film.path) if report.film else None,
                         "duration": report.film.duration if report.film else None,
                         **({"no_film": no_film} if no_film else {})}), False)
        return
    videos = sum(r.generated for r in report.shots.values())
    more = f" ({videos} candidates)" if videos > counts.get("rendered", 0) else ""
    echo("summary: " + (", ".join(f"{n} {o}" + (more if o == "rendered" else "") for o, n in counts.items())
                        or "nothing to do"), False)
    for failure in report.failed:
        echo(f"failed: {failure.shot}: {failure.error}", True)
    for shot in report.shots.values():
        if shot.warning:
            echo(f"warning: shot '{shot.shot}': {shot.warning}", True)
    if report.film is not None:
        verb = "stitched" if report.film.stitched else "up to date"
        echo(f"film: {report.film.path} ({report.film.duration:.2f} s, {verb})", False)
    else:
        echo(f"film: not stitched: {no_film}", False)


def _agreed(pv: Any, *, budget: float | None, yes: bool, json_out: bool,
            confirm: Callable[[str, bool], bool]) -> bool:
    """Ask on a terminal before paid work; True when nothing needs asking or the user said yes."""
    from storyboard.build import consent

    question = consent(pv, budget=budget, yes=yes, terminal=sys.stdin.isatty())
    return question is None or confirm(question, json_out)


def _reporter(quiet: bool, json_out: bool, total: int) -> Any:
    from storyboard import progress

    if json_out:
        return progress.JsonReporter(sys.stdout)
    if quiet:
        return progress.QuietReporter(sys.stdout)
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        from rich.console import Console

        # as cli._console: in a pipe or a log, lines are not wrapped at 80 columns
        return progress.LiveReporter(Console(highlight=False, width=None), total)
    return progress.PlainReporter(sys.stdout)
