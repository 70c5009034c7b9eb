"""The command line: parse arguments, call the library, map errors to exit codes."""

from __future__ import annotations

import os
import re
import sys
from enum import Enum, IntEnum
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
    rich_markup_mode=None,  # plain help: rich's help renderer costs 100 ms of start-up
)
_state = {"verbose": False, "interrupted": lambda: False}


class _PlainHelp(typer.core.TyperCommand):
    """Help with plain placeholders (FILE, SHOT, N), which newer typer shows as `{file}` and `<list[str]>`."""

    def format_usage(self, ctx, formatter) -> None:  # noqa: ANN001 - click's Context and HelpFormatter
        pieces = [re.sub(r"\{(.+?)\}", r"\1", piece) for piece in self.collect_usage_pieces(ctx)]
        formatter.write_usage(ctx.command_path, " ".join(pieces))

    def format_options(self, ctx, formatter) -> None:  # noqa: ANN001
        rows: dict[str, list[tuple[str, str]]] = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            if param.param_type_name == "argument":
                name = re.sub(r" <.*>$", "", name)  # its metavar already says it
            rows["argument" if param.param_type_name == "argument" else "option"].append(
                (re.sub(r"<([^>]*)>", lambda m: _placeholder(m[1]), name), text))
        for title, key in (("Arguments", "argument"), ("Options", "option")):
            if rows[key]:
                with formatter.section(title):
                    formatter.write_dl(rows[key])


def _placeholder(type_name: str) -> str:
    """'list[str]' -> TEXT, 'int range' -> N, 'a|b' -> [a|b]: what to type, not the Python type."""
    inner = re.sub(r"^list\[(.*)\]$", r"\1", type_name)
    if "|" in inner:
        return f"[{inner}]"
    return {"str": "TEXT", "int": "N", "int range": "N", "float": "NUMBER", "float range": "NUMBER",
            "path": "PATH", "Path": "PATH"}.get(inner, inner.upper())


class Exit(IntEnum):
    """The exit statuses the README documents."""

    OK = 0
    FAILED = 1
    """a shot, ffmpeg, the cache or a provider failed"""
    INVALID = 2
    """bad input or a missing flag; nothing was run"""
    BUG = 3
    DECLINED = 4
    """the user answered no to the cost question; nothing was generated"""
    INTERRUPTED = 130


DEFAULT_FILE = Path("storyboard.toml")
FileArg = Annotated[Path, typer.Argument(help="the storyboard file (default: ./storyboard.toml)", metavar="FILE",
                                         show_default=False)]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache-dir", metavar="DIR", help="cache folder (default: .storyboard/ beside the file, or STORYBOARD_CACHE)")]
AllowOutsideOpt = Annotated[bool, typer.Option("--allow-outside",
                                               help="allow assets outside the storyboard's folder")]


RemoteOpt = Annotated[Optional[str], typer.Option("--remote", metavar="URL", help="shared remote cache (fsspec URL); overrides [cache] remote and STORYBOARD_REMOTE")]
NoRemoteOpt = Annotated[bool, typer.Option("--no-remote", help="ignore any remote cache")]
RequireRemoteOpt = Annotated[bool, typer.Option("--require-remote", help="fail instead of continuing locally when the remote is down")]


def _allow_base_urls(ctx: typer.Context, hosts: Optional[list[str]]) -> Optional[list[str]]:
    """Hand --allow-base-url to the key-destination check (storyboard.providers._hosts) for this command."""
    if not hosts:
        return hosts
    from storyboard.providers._hosts import ALLOW_ENV

    before = os.environ.get(ALLOW_ENV)
    os.environ[ALLOW_ENV] = ",".join(filter(None, [before, *hosts]))

    def restore() -> None:
        if before is None:
            os.environ.pop(ALLOW_ENV, None)
        else:
            os.environ[ALLOW_ENV] = before

    ctx.call_on_close(restore)
    return hosts


AllowBaseUrlOpt = Annotated[Optional[list[str]], typer.Option("--allow-base-url", metavar="HOST", callback=_allow_base_urls, help="let the storyboard's base_url send a provider's key to HOST (repeatable); by default only the provider's own host or loopback")]


def _open(file: Path, cache_dir: Optional[Path], provider: Optional[str] = None, remote: Optional[str] = None,
          no_remote: bool = False, require_remote: bool = False,
          allow_outside: bool = False):  # noqa: ANN202 - a storyboard.build.Project
    """Load the project and attach the team's remote cache, if any."""
    from storyboard.build import attach_remote, locate_board, open_project

    project = open_project(locate_board(file), cache_dir=cache_dir, provider=provider,
                           allow_outside=allow_outside)
    for warning in project.board.warnings:  # the edit's (a cue past the end, content playing twice)
        print(f"storyboard: warning: {warning}", file=sys.stderr)
    attach_remote(project, remote, no_remote=no_remote, required=require_remote,
                  warn=lambda message: print(f"storyboard: warning: {message}", file=sys.stderr))
    return project


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
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="show tracebacks (before or after the command)")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")] = False,
) -> None:
    _state["verbose"] = _state["verbose"] or verbose


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


def _console(stderr: bool = False):  # noqa: ANN202 - rich is imported lazily
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # in a pipe or a log, lines are not wrapped at 80 columns
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 200)


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
def init(
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="the folder to write it into (created if needed; default: here)", show_default=False)] = Path("."),
) -> None:
    """Write a small storyboard that builds at once: 3 shots, their pictures and a .gitignore."""
    from storyboard.scaffold import init as scaffold

    board = scaffold(directory)
    typer.echo(f"wrote {board}, its pictures in {board.parent / 'assets'} and a .gitignore")
    typer.echo(f"next: storyboard build {board}")


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


class ExportFormat(str, Enum):
    otio = "otio"
    fcp7 = "fcp7"
    edl = "edl"


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


def main() -> None:
    """Entry point: run the app, turning StoryboardErrors into one line and an exit code."""
    args = _take_verbose(sys.argv[1:])
    try:
        code = app(args=args, prog_name="storyboard", standalone_mode=False)
        if code == Exit.INTERRUPTED:  # typer's word for a KeyboardInterrupt (a second Ctrl-C, say)
            _say_interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except StoryboardError as exc:
        if _state["verbose"]:
            import traceback

            traceback.print_exc()
        if exc.exit_code == Exit.INTERRUPTED or _state["interrupted"]():
            _say_interrupted()  # Ctrl-C also kills the shots' ffmpeg: their errors are the interruption
        print(f"storyboard: error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):  # older typer, like click, says Abort
        _say_interrupted()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        # usage errors (typer vendors click in some versions, so match by shape, not class)
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        import traceback

        traceback.print_exc()
        print("storyboard: internal error; please report it with the traceback above", file=sys.stderr)
        sys.exit(Exit.BUG)


def _say_interrupted() -> None:
    """One line however many Ctrl-Cs, and whichever thread or ffmpeg they reached first; exit 130."""
    during_build = _state["interrupted"]()
    print("storyboard: interrupted" + (": finished shots are cached; in-flight jobs are journaled and resume "
                                       "on the next build" if during_build else ""), file=sys.stderr)
    sys.exit(Exit.INTERRUPTED)


def _take_verbose(args: list[str]) -> list[str]:
    """Accept --verbose / -v anywhere before `--`, not only before the command."""
    end = args.index("--") if "--" in args else len(args)
    if any(a in ("--verbose", "-v") for a in args[:end]):
        _state["verbose"] = True
    return [a for a in args[:end] if a not in ("--verbose", "-v")] + args[end:]
