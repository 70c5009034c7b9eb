"""The command line: parse arguments, call the library, map errors to exit codes."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyboard import __version__
from storyboard.errors import StoryboardError

app = typer.Typer(
    name="storyboard",
    help="make for AI films: build a TOML storyboard of shots into a film, paying for each shot once.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_state = {"verbose": False}

FileArg = Annotated[Path, typer.Argument(help="the storyboard file", show_default=False)]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help="cache folder (default: .storyboard/ beside the file, or STORYBOARD_CACHE)")]


class GraphFormat(str, Enum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"storyboard {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")] = False,
) -> None:
    _state["verbose"] = verbose


@app.command()
def validate(file: FileArg, allow_outside: Annotated[bool, typer.Option(help="allow assets outside the storyboard's folder")] = False) -> None:
    """Check the storyboard: format, references, cycles and each provider's rules."""
    from storyboard.graph import build_graph
    from storyboard.load import load

    board = load(file, allow_outside=allow_outside)
    build_graph(board)
    typer.echo(f"{file}: ok ({len(board.shots)} shots, film of {len(board.sequence)})")


@app.command()
def graph(file: FileArg, format: Annotated[GraphFormat, typer.Option("--format", "-f")] = GraphFormat.text,
          cache_dir: CacheOpt = None) -> None:
    """Draw the shot graph as text, Mermaid or DOT, marking each shot cached or to run."""
    from storyboard.build import open_project, plan_project
    from storyboard.graph import render

    project = open_project(file, cache_dir=cache_dir)
    steps, _ = plan_project(project)
    status = {s.shot: "cached" if s.status == "cached" else "to run" for s in steps}
    typer.echo(render(project.board, project.graph, format.value, status), nl=False)


@app.command()
def schema() -> None:
    """Print the JSON schema of storyboard files."""
    from storyboard.schema import schema_json

    typer.echo(schema_json(), nl=False)


@app.command()
def plan(file: FileArg, cache_dir: CacheOpt = None,
         provider: Annotated[Optional[str], typer.Option(help="use this provider for every shot")] = None) -> None:
    """Show what a build would do: each shot cached or to run, and why."""
    from storyboard.build import open_project, plan_project

    project = open_project(file, cache_dir=cache_dir, provider=provider)
    steps, _ = plan_project(project)
    width = max(len(s.shot) for s in steps)
    for step in steps:
        shot = project.board.shots[step.shot]
        typer.echo(f"{step.shot:<{width}}  {step.status:<17}  {shot.provider}/{shot.model}  {shot.duration}s  {step.reason}")
    todo = sum(1 for s in steps if s.status != "cached")
    typer.echo(f"{len(steps) - todo} cached, {todo} to generate")


@app.command()
def build(
    file: FileArg,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="build only this shot (and what it needs); repeatable")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="shots rendered at once")] = 4,
    keep_going: Annotated[bool, typer.Option("--keep-going", "-k", help="finish independent shots when one fails")] = False,
    provider: Annotated[Optional[str], typer.Option(help="use this provider for every shot")] = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Generate what is not cached and stitch the film."""
    import threading

    from storyboard.build import build as run_build
    from storyboard.build import open_project
    from storyboard.executor import Outcome
    from storyboard.progress import PlainReporter

    project = open_project(file, cache_dir=cache_dir, provider=provider)
    reporter = PlainReporter(sys.stdout)
    report = run_build(project, only=only, jobs=jobs, keep_going=keep_going, on_event=reporter,
                       cancel=threading.Event(), on_film_step=reporter.film_step, provider=provider)
    parts = [f"{report.count(o)} {o.value}" for o in Outcome if report.count(o)]
    typer.echo("summary: " + (", ".join(parts) or "nothing to do"))
    for failure in report.failed:
        typer.echo(f"failed: {failure.shot}: {failure.error}", err=True)
    if report.film is not None:
        verb = "stitched" if report.film.stitched else "up to date"
        typer.echo(f"film: {report.film.path} ({report.film.duration:.2f} s, {verb})")
    if report.failed:
        raise typer.Exit(1)


def main() -> None:
    """Entry point: run the app, turning StoryboardErrors into one line and an exit code."""
    if "--verbose" in sys.argv or "-v" in sys.argv:
        _state["verbose"] = True
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except StoryboardError as exc:
        if _state["verbose"]:
            import traceback

            traceback.print_exc()
        print(f"storyboard: error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("storyboard: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        # usage errors (typer vendors click in some versions, so match by shape, not class)
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        import traceback

        traceback.print_exc()
        print("storyboard: internal error; please report it with the traceback above", file=sys.stderr)
        sys.exit(3)
