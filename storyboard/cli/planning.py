"""Commands that read a storyboard without generating: validate, graph, schema, plan, init."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyboard.cli.app import (
    AllowBaseUrlOpt, AllowOutsideOpt, CacheOpt, DEFAULT_FILE, FileArg, NoRemoteOpt, RemoteOpt,
    _PlainHelp, _console, _open, app,
)


class GraphFormat(str, Enum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"


@app.command(cls=_PlainHelp)
def validate(file: FileArg = DEFAULT_FILE, allow_outside: AllowOutsideOpt = False,
             allow_base_url: AllowBaseUrlOpt = None) -> None:
    """Check the storyboard: format, references, cycles and each provider's rules."""
    from storyboard.build import locate_board
    from storyboard.graph import build_graph
    from storyboard.load import load

    file = locate_board(file)
    board = load(file, allow_outside=allow_outside)
    build_graph(board)
    for warning in board.warnings:
        print(f"storyboard: warning: {warning}", file=sys.stderr)
    typer.echo(f"{file}: ok ({len(board.shots)} shots, film of {len(board.sequence)})")


@app.command(cls=_PlainHelp)
def graph(file: FileArg = DEFAULT_FILE,
          format: Annotated[GraphFormat, typer.Option("--format", "-f", metavar="FORMAT",
                                                      help="text, mermaid or dot")] = GraphFormat.text,
          cache_dir: CacheOpt = None, allow_outside: AllowOutsideOpt = False,
          allow_base_url: AllowBaseUrlOpt = None) -> None:
    """Draw the shot graph as text, Mermaid or DOT, marking each shot cached or to run."""
    from storyboard.build import locate_board, open_project, plan_project
    from storyboard.graph import render

    project = open_project(locate_board(file), cache_dir=cache_dir, allow_outside=allow_outside)
    steps, _ = plan_project(project)
    status = {s.shot: "cached" if s.status == "cached" else "to run" for s in steps}
    typer.echo(render(project.board, project.graph, format.value, status), nl=False)


@app.command(cls=_PlainHelp)
def schema() -> None:
    """Print the JSON schema of storyboard files."""
    from storyboard.schema import schema_json

    typer.echo(schema_json(), nl=False)


@app.command(cls=_PlainHelp)
def plan(file: FileArg = DEFAULT_FILE, cache_dir: CacheOpt = None,
         provider: Annotated[Optional[str], typer.Option(metavar="NAME", help="use this provider for every shot")] = None,
         jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, metavar="N", help="shots rendered at once (for the time estimate)")] = 4,
         json_out: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
         all_rows: Annotated[bool, typer.Option("--all", help="on a large board (over 200 shots), print every row")] = False,
         remote: RemoteOpt = None, no_remote: NoRemoteOpt = False, allow_outside: AllowOutsideOpt = False,
         allow_base_url: AllowBaseUrlOpt = None) -> None:
    """Show what a build would do: each shot cached or to run and why, its cost, and the totals."""
    from storyboard.build import plan_project
    from storyboard.plan_view import render_table, view

    project = _open(file, cache_dir, provider, remote, no_remote, allow_outside=allow_outside)
    steps, _ = plan_project(project)
    pv = view(project, steps, jobs)
    if json_out:
        import json

        typer.echo(json.dumps(pv.as_json(), indent=2))
        return
    render_table(pv, _console(), all_rows=all_rows)


@app.command(cls=_PlainHelp)
def init(
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="the folder to write it into (created if needed; default: here)", show_default=False)] = Path("."),
) -> None:
    """Write a small storyboard that builds at once: 3 shots, their pictures and a .gitignore."""
    from storyboard.scaffold import init as scaffold

    board = scaffold(directory)
    typer.echo(f"wrote {board}, its pictures in {board.parent / 'assets'} and a .gitignore")
    typer.echo(f"next: storyboard build {board}")

