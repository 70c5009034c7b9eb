"""Commands that finish and review the film: takes, pick, serve (the review room), report, export."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyboard.cli.app import (
    AllowBaseUrlOpt, AllowOutsideOpt, CacheOpt, DEFAULT_FILE, FileArg, NoRemoteOpt, RemoteOpt,
    _PlainHelp, _open, app,
)


class ExportFormat(str, Enum):
    otio = "otio"
    fcp7 = "fcp7"
    edl = "edl"


@app.command(cls=_PlainHelp)
def takes(file: Annotated[Path, typer.Argument(metavar="FILE", help="the storyboard")],
          shot: Annotated[str, typer.Argument(metavar="SHOT", help="the shot whose candidates to list")],
          cache_dir: CacheOpt = None, allow_outside: AllowOutsideOpt = False,
          json_out: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List a shot's candidates (takes): picked, duration, cost, created, key, continuity with the clip before."""
    from storyboard.takes import list_candidates, takes_table

    project = _open(file, cache_dir, allow_outside=allow_outside)
    candidates = list_candidates(project, shot)
    if json_out:
        import json

        typer.echo(json.dumps([{**c.__dict__, "path": str(c.path) if c.path else None} for c in candidates], indent=2))
        return
    typer.echo(takes_table(candidates))


@app.command(cls=_PlainHelp)
def report(
    file: FileArg = DEFAULT_FILE,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="PATH", help="the HTML file (default: beside the film, FILM.report.html)")] = None,
    cache_dir: CacheOpt = None,
    remote: RemoteOpt = None,
    no_remote: NoRemoteOpt = False,
    allow_outside: AllowOutsideOpt = False,
    allow_base_url: AllowBaseUrlOpt = None,
) -> None:
    """Write an HTML contact sheet: the film, each shot's frames and settings, each cut's continuity."""
    from storyboard.report import make_report

    project = _open(file, cache_dir, remote=remote, no_remote=no_remote, allow_outside=allow_outside)
    typer.echo(f"report: {make_report(project, out)}")


@app.command(cls=_PlainHelp)
def export(
    file: FileArg = DEFAULT_FILE,
    format: Annotated[ExportFormat, typer.Option("--format", "-f", metavar="FORMAT",
                                                 help="otio (OpenTimelineIO), fcp7 (Final Cut 7 XML: Premiere, Resolve) or edl (CMX 3600)")] = ExportFormat.otio,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="PATH", help="the file to write (default: beside the film, FILM.otio, .xml or .edl)")] = None,
    cache_dir: CacheOpt = None,
    allow_outside: AllowOutsideOpt = False,
) -> None:
    """Hand the edit to an editor: the timeline as OTIO, FCP 7 XML or EDL, its clips in build/media/."""
    from storyboard.edit.export import export as write_export

    project = _open(file, cache_dir, no_remote=True, allow_outside=allow_outside)
    result = write_export(project, format.value, out)
    typer.echo(f"export: {result.path} ({result.clips} clips, {result.transitions} transitions, "
               f"{result.sounds} sound tracks; media in {result.media})")


@app.command(cls=_PlainHelp)
def pick(
    file: Annotated[Path, typer.Argument(help="the storyboard file", metavar="FILE", show_default=False)],
    shot: Annotated[str, typer.Argument(metavar="SHOT", help="the shot's id", show_default=False)],
    number: Annotated[int, typer.Argument(metavar="N", help="the candidate the film uses (1..takes)", show_default=False)],
    cache_dir: CacheOpt = None,
    allow_outside: AllowOutsideOpt = False,
    allow_base_url: AllowBaseUrlOpt = None,
) -> None:
    """Write `pick = N` into the shot (comments and layout kept), then show what will regenerate or re-stitch."""
    from storyboard.build import locate_board, open_project
    from storyboard.pick import follow_up, write_pick

    file = locate_board(file)
    written = write_pick(file, shot, number)
    was = "unchanged" if not written.changed else \
        f"was {written.previous}" if written.previous is not None else "was the default, 1"
    typer.echo(f"{file}: shot '{shot}': pick = {number} ({was})")
    project = open_project(file, cache_dir=cache_dir, allow_outside=allow_outside)
    for line in follow_up(project).lines():
        typer.echo(line)


@app.command(cls=_PlainHelp)
def serve(
    file: FileArg = DEFAULT_FILE,
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="N", help="the port (0: any free one)")] = 8000,
    host: Annotated[str, typer.Option(metavar="HOST", help="the address to listen on; anything but loopback lets other machines in")] = "127.0.0.1",
    provider: Annotated[Optional[str], typer.Option(metavar="NAME", help="rebuild with this provider; the animatic is free")] = "animatic",
    budget: Annotated[Optional[float], typer.Option(metavar="USD", help="let rebuilds spend up to this in all (a paid provider needs it, or --yes)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="let rebuilds pay for whatever the storyboard asks, without asking")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, metavar="N", help="shots rendered at once")] = 2,
    cache_dir: CacheOpt = None,
    allow_outside: AllowOutsideOpt = False,
    allow_base_url: AllowBaseUrlOpt = None,
) -> None:
    """The review room: a local page with the film and every shot's candidates; click one to pick it."""
    from storyboard.build import locate_board
    from storyboard.serve import Room, serve as run_server

    room = Room(locate_board(file), cache_dir=cache_dir, provider=provider, budget=budget, yes=yes, jobs=jobs,
                allow_outside=allow_outside)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"storyboard: warning: listening on {host}: anyone who reaches this machine can watch the clips "
                   "and pick takes (the storyboard file is edited)", err=True)
    run_server(room, host=host, port=port, announce=lambda url: typer.echo(f"review room: {url} (Ctrl-C stops it)"))

