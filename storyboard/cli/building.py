"""Commands that generate and share: build (with its consent and progress), push, pull, gc."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyboard.errors import StoryboardError
from storyboard.cli.app import (
    AllowBaseUrlOpt, AllowOutsideOpt, CacheOpt, DEFAULT_FILE, FileArg, NoRemoteOpt, RemoteOpt,
    RequireRemoteOpt, _PlainHelp, _open, _state, app,
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
    from storyboard.build_command import run

    project = _open(file, cache_dir, provider, remote, no_remote, require_remote, allow_outside)
    code = run(project, only=only, jobs=jobs, keep_going=keep_going, provider=provider, budget=budget, yes=yes,
               quiet=quiet, json_out=json_out, resubmit=resubmit, force=force,
               echo=lambda message, err: typer.echo(message, err=err), confirm=_confirm,
               on_watch=lambda interrupted: _state.__setitem__("interrupted", interrupted))
    if code:
        raise typer.Exit(code)


def _confirm(question: str, err: bool) -> bool:
    """Ask at the terminal (storyboard.build_command asks before paid work); Ctrl-C is a no."""
    try:
        return typer.confirm(question, err=err)
    except typer.Abort:
        return False


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

