"""Commands that generate and share: build (with its consent and progress), push, pull, gc."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyboard.errors import StoryboardError
from storyboard.cli.app import (
    AllowBaseUrlOpt, AllowOutsideOpt, CacheOpt, DEFAULT_FILE, Exit, FileArg, NoRemoteOpt, RemoteOpt,
    RequireRemoteOpt, _PlainHelp, _console, _open, _state, app,
)


@app.command(cls=_PlainHelp)
def build(
    file: FileArg = DEFAULT_FILE,
    only: Annotated[Optional[list[str]], typer.Option(
        "--only", metavar="SHOT", help="build only this shot (and what it needs); repeatable; stitches no film")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, metavar="N", help="shots rendered at once")] = 4,
    keep_going: Annotated[bool, typer.Option("--keep-going", "-k", help="finish independent shots when one fails")] = False,
    provider: Annotated[Optional[str], typer.Option(metavar="NAME", help="use this provider for every shot")] = None,
    budget: Annotated[Optional[float], typer.Option(
        metavar="USD", help="refuse to start when the estimated cost (USD) exceeds this; "
                            "without a terminal, consent to paid work up to it")] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="do not ask before paid work (paid work without a terminal needs it, or --budget)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the summary")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines for machines")] = False,
    cache_dir: CacheOpt = None,
    remote: RemoteOpt = None,
    no_remote: NoRemoteOpt = False,
    require_remote: RequireRemoteOpt = False,
    allow_outside: AllowOutsideOpt = False,
    allow_base_url: AllowBaseUrlOpt = None,
    resubmit: Annotated[Optional[list[str]], typer.Option("--resubmit", metavar="SHOT", help="send SHOT's create again although an earlier one lost its answer and may have been charged (repeatable)")] = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", metavar="SHOT", help="generate SHOT again as a new batch of takes, keeping the old ones (repeatable)")] = None,
) -> None:
    """Generate what is not cached and stitch the film."""
    import threading

    from storyboard import progress
    from storyboard.build import build as run_build
    from storyboard.build import plan_project, select, why_no_film
    from storyboard.errors import MissingKeyError
    from storyboard.executor import Outcome
    from storyboard.plan_view import view

    project = _open(file, cache_dir, provider, remote, no_remote, require_remote, allow_outside)
    if force:
        from storyboard.takes import force_batches

        force_batches(project, force)
    steps, planned = plan_project(project)
    wanted = set(select(project, only)) if only else None
    pv = view(project, [s for s in steps if wanted is None or s.shot in wanted], jobs)
    blocking = [p for p in pv.problems if not p.startswith(("note:", "warning:"))]
    if blocking:
        raise MissingKeyError(blocking[0] + "; nothing was run")
    for note in pv.problems:
        if not quiet and not json_out:
            typer.echo(note, err=True)
    _ask(pv, budget=budget, yes=yes, json_out=json_out)
    reporter = _reporter(quiet, json_out, total=len(wanted) if wanted else len(project.order))
    cancel = threading.Event()
    watch = progress.InterruptWatch()
    _state["interrupted"] = lambda: watch() or cancel.is_set()
    try:
        report = run_build(project, only=only, jobs=jobs, keep_going=keep_going,
                           on_event=progress.interrupted_as_such(reporter, _state["interrupted"]),
                           cancel=cancel, on_film_step=reporter.film_step, provider=provider, resubmit=resubmit,
                           planned=(steps, planned))
    finally:
        reporter.close()
        watch.close()
    counts = {o.value: report.count(o) for o in Outcome if report.count(o)}
    no_film = why_no_film(project, report, only)
    if json_out:
        import json

        typer.echo(json.dumps({"event": "summary", **counts, "failed_shots": {r.shot: r.error for r in report.failed},
                               "warnings": {r.shot: r.warning for r in report.shots.values() if r.warning},
                               "film": str(report.film.path) if report.film else None,
                               "duration": report.film.duration if report.film else None,
                               **({"no_film": no_film} if no_film else {})}))
    else:
        videos = sum(r.generated for r in report.shots.values())
        more = f" ({videos} candidates)" if videos > counts.get("rendered", 0) else ""
        typer.echo("summary: " + (", ".join(f"{n} {o}" + (more if o == "rendered" else "") for o, n in counts.items())
                                  or "nothing to do"))
        for failure in report.failed:
            typer.echo(f"failed: {failure.shot}: {failure.error}", err=True)
        for shot in report.shots.values():
            if shot.warning:
                typer.echo(f"warning: shot '{shot.shot}': {shot.warning}", err=True)
        if report.film is not None:
            verb = "stitched" if report.film.stitched else "up to date"
            typer.echo(f"film: {report.film.path} ({report.film.duration:.2f} s, {verb})")
        else:
            typer.echo(f"film: not stitched: {no_film}")
    if report.failed:
        raise typer.Exit(Exit.FAILED)


def _ask(pv, *, budget: Optional[float], yes: bool, json_out: bool) -> None:  # noqa: ANN001 - a PlanView
    """Ask on a terminal before paid work; no means nothing is generated (exit 4)."""
    from storyboard.build import consent

    question = consent(pv, budget=budget, yes=yes, terminal=sys.stdin.isatty())
    if question is None:
        return
    try:
        agreed = typer.confirm(question, err=json_out)
    except typer.Abort:
        agreed = False
    if not agreed:
        typer.echo("storyboard: nothing was generated", err=True)
        raise typer.Exit(Exit.DECLINED)


@app.command(cls=_PlainHelp)
def push(file: FileArg = DEFAULT_FILE, cache_dir: CacheOpt = None, remote: RemoteOpt = None,
         allow_outside: AllowOutsideOpt = False, allow_base_url: AllowBaseUrlOpt = None) -> None:
    """Upload what the lock pins (clips, frames, the film) to the remote cache."""
    _sync(file, cache_dir, remote, "push", allow_outside)


@app.command(cls=_PlainHelp)
def pull(file: FileArg = DEFAULT_FILE, cache_dir: CacheOpt = None, remote: RemoteOpt = None,
         allow_outside: AllowOutsideOpt = False, allow_base_url: AllowBaseUrlOpt = None) -> None:
    """Download what the lock pins from the remote cache, so the next build pays for nothing."""
    _sync(file, cache_dir, remote, "pull", allow_outside)


def _sync(file: Path, cache_dir: Optional[Path], remote: Optional[str], direction: str, allow_outside: bool) -> None:
    project = _open(file, cache_dir, remote=remote, require_remote=True, allow_outside=allow_outside)
    if project.remote is None:
        raise StoryboardError(f"{file}: no remote cache: set [cache] remote, STORYBOARD_REMOTE or --remote")
    from storyboard.takes import locked_keys

    keys = [key for entry in project.lock.shots.values() for key in locked_keys(entry)]
    if project.lock.film.get("key"):
        keys.append(project.lock.film["key"])
    if not keys:
        raise StoryboardError(f"{file}: the lock pins nothing yet; build first (or pull after a teammate pushed "
                              "and committed storyboard.lock)")

    def progress(done: int, total: int, what: str) -> None:
        print(f"{direction}: {done}/{total} {what}", file=sys.stderr, flush=True)

    if direction == "push" and not project.remote.writable:
        raise StoryboardError("the remote is read-only here (remote_write = false); nothing was pushed")
    sync = project.remote.push if direction == "push" else project.remote.pull
    report = sync(project.cache, keys, progress)
    typer.echo(f"{direction}: {report.actions} actions, {report.objects} objects, {report.bytes / 1e6:.1f} MB"
               + (f"; missing: {', '.join(k[:12] for k in report.missing)}" if report.missing else ""))
    if report.missing:
        raise typer.Exit(1)


def _reporter(quiet: bool, json_out: bool, total: int):  # noqa: ANN202 - see storyboard.progress
    from storyboard import progress

    if json_out:
        return progress.JsonReporter(sys.stdout)
    if quiet:
        return progress.QuietReporter(sys.stdout)
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        return progress.LiveReporter(_console(), total)
    return progress.PlainReporter(sys.stdout)


@app.command(cls=_PlainHelp)
def gc(
    files: Annotated[list[Path], typer.Argument(
        metavar="FILE", help="every storyboard (or its .lock) whose clips to keep", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="say what would go; remove nothing")] = False,
    cache_dir: CacheOpt = None,
) -> None:
    """Remove from the cache what no given storyboard's lock refers to."""
    from storyboard.cache import Cache
    from storyboard.gc import collect, locate

    for root, locks in locate(files, cache_dir).items():
        typer.echo(collect(Cache(root), locks, dry_run=dry_run).summary())

