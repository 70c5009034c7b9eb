"""The console entry point: answer the common read-only commands before importing the CLI.

Importing typer and parsing a command through it costs about as much CPU as planning a few
hundred cached shots, so two paths skip it when their arguments are the plain ones:

* a no-op ``build``, answered from the stamp (``storyboard.stamp.try_noop``);
* ``plan [FILE] [--cache-dir DIR] [--jobs N] [--json] [--all]``, which does exactly what
  ``cli.plan`` does, with ``cli.main``'s error handling;
* ``build [FILE] [--cache-dir DIR] [--jobs N] [--keep-going] [--yes] [--quiet] [--json]`` when the
  stamp cannot answer (the full check): ``cli.build``'s work (storyboard.build_command), likewise.

Any other argument (an option typer must check, ``--help``, ``-v``, a remote flag) goes to the
full CLI, which gives the same answer and the same usage errors as before. The program itself
(``console``) then leaves without the interpreter's teardown (``_leave``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    """`storyboard ...`: a fast path when one applies, else the full CLI."""
    from storyboard.stamp import try_noop

    args = sys.argv[1:]
    if try_noop(args):
        return
    plan_args = _plain(args, "plan")
    if plan_args is not None:
        import gc

        # a plan is short and bounded (a board is at most 4 MiB) and makes little cyclic garbage: the
        # collector's ≈ 100 passes over the growing board were ≈ 5 % of a 1,000-shot plan's CPU
        gc.disable()
        _run(lambda: _plan(plan_args))
        return
    build_args = _plain(args, "build")
    if build_args is not None:
        import gc

        gc.disable()  # while the board is loaded and planned, as for a plan; build_command.run turns it back on
        _run(lambda: _build(build_args))
        return
    from storyboard.cli import main as cli_main

    cli_main()


class _PlainArgs:
    """The arguments of a plain ``storyboard plan`` or ``build``, with the CLI's defaults."""

    def __init__(self) -> None:
        self.file = Path("storyboard.toml")
        self.cache_dir: Path | None = None
        self.jobs = 4
        self.json_out = self.all_rows = False
        self.keep_going = self.yes = self.quiet = False


_FLAGS = {
    "plan": {"--json": "json_out", "--all": "all_rows"},
    "build": {"--keep-going": "keep_going", "-k": "keep_going", "--yes": "yes", "-y": "yes",
              "--quiet": "quiet", "-q": "quiet", "--json": "json_out"},
}
"""Per command, the switches the plain path knows (anything else goes to the CLI)."""


def _plain(args: list[str], command: str) -> _PlainArgs | None:
    """The parsed arguments of ``command`` when every one is a plain one, else None (use the CLI)."""
    if not args or args[0] != command:
        return None
    flags = _FLAGS[command]
    parsed, rest, file_given = _PlainArgs(), args[1:], False
    while rest:
        arg = rest.pop(0)
        if arg in flags:
            setattr(parsed, flags[arg], True)
        elif arg in ("--jobs", "-j") and rest and rest[0].isascii() and rest[0].isdigit() \
                and int(rest[0]) >= 1:
            parsed.jobs = int(rest.pop(0))
        elif arg == "--cache-dir" and rest and rest[0] and not rest[0].startswith("-"):
            parsed.cache_dir = Path(rest.pop(0))
        elif arg and not arg.startswith("-") and not file_given:
            parsed.file, file_given = Path(arg), True
        else:
            return None
    return parsed


_interrupted = [lambda: False]
"""What says a build was interrupted (set while one runs), as cli's ``_state["interrupted"]``."""


def _run(command: Any) -> None:
    """A command under ``cli.main``'s handling: one line and the exit status for an error."""
    from storyboard.errors import StoryboardError

    try:
        code = command()
    except StoryboardError as exc:
        if exc.exit_code == _INTERRUPTED or _interrupted[0]():
            _say_interrupted()  # Ctrl-C also kills the shots' ffmpeg: their errors are the interruption
        print(f"storyboard: error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _say_interrupted()
    except Exception:  # noqa: BLE001 - the last line of defence, as in cli.main
        import traceback

        traceback.print_exc()
        print("storyboard: internal error; please report it with the traceback above", file=sys.stderr)
        sys.exit(3)
    if code:
        sys.exit(code)


def console() -> None:
    """The ``storyboard`` program: ``main``, then out without the interpreter's teardown."""
    main()
    _leave(0)


def _leave(code: int) -> None:
    """Exit with ``code``, skipping the interpreter's teardown when nothing else runs.

    A plan of 1,000 shots leaves about 150 modules and a board's worth of objects behind, and
    freeing them one by one took about 40 ms of a 0.39 s plan. Nothing here needs the teardown:
    storyboard registers no exit handler, the output is flushed first (a failing flush, a closed
    pipe, takes the normal way out and its message), and while another thread is alive the
    normal exit joins it.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    threading = sys.modules.get("threading")
    if threading is None or threading.active_count() == 1:
        os._exit(code)
    sys.exit(code)


_INTERRUPTED = 130  # cli.Exit.INTERRUPTED


def _say_interrupted() -> None:
    """cli._say_interrupted: one line, and what a build keeps when it was one."""
    during_build = _interrupted[0]()
    print("storyboard: interrupted" + (": finished shots are cached; in-flight jobs are journaled and resume "
                                       "on the next build" if during_build else ""), file=sys.stderr)
    sys.exit(_INTERRUPTED)


def _build(args: _PlainArgs) -> int:
    """What ``cli.build`` does with these arguments; its exit status."""
    from storyboard.build_command import open_for_cli, run

    def echo(message: str, err: bool) -> None:  # as typer.echo
        stream = sys.stderr if err else sys.stdout
        stream.write(message + "\n")
        stream.flush()

    def watch(interrupted: Any) -> None:
        _interrupted[0] = interrupted

    return run(open_for_cli(args.file, args.cache_dir), jobs=args.jobs, keep_going=args.keep_going, yes=args.yes,
               quiet=args.quiet, json_out=args.json_out, echo=echo, confirm=_confirm, on_watch=watch)


def _confirm(question: str, err: bool) -> bool:
    """cli.building's question at the terminal (paid work only): typer is imported for it."""
    import typer

    try:
        return typer.confirm(question, err=err)
    except typer.Abort:
        return False


def _plan(args: _PlainArgs) -> None:
    """What ``cli.plan`` does with these arguments (no provider override, no remote flag)."""
    from storyboard.build import plan_project
    from storyboard.build_command import open_for_cli
    from storyboard.plan_view import render_table, view

    project = open_for_cli(args.file, args.cache_dir)
    steps, _ = plan_project(project)
    pv = view(project, steps, args.jobs)
    if args.json_out:
        import json

        print(json.dumps(pv.as_json(), indent=2), flush=True)
        return
    from storyboard.plan_view import PlainConsole

    # as cli._console: in a pipe or a log, lines are not wrapped at 80 columns
    render_table(pv, PlainConsole(sys.stdout, None if sys.stdout.isatty() else 200), all_rows=args.all_rows)
