"""The console entry point: answer the common read-only commands before importing the CLI.

Importing typer and parsing a command through it costs about as much CPU as planning a few
hundred cached shots, so two paths skip it when their arguments are the plain ones:

* a no-op ``build``, answered from the stamp (``storyboard.stamp.try_noop``);
* ``plan [FILE] [--cache-dir DIR] [--jobs N] [--json] [--all]``, which does exactly what
  ``cli.plan`` does, with ``cli.main``'s error handling.

Any other argument (an option typer must check, ``--help``, ``-v``, a remote flag) goes to the
full CLI, which gives the same answer and the same usage errors as before.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    """`storyboard ...`: a fast path when one applies, else the full CLI."""
    from storyboard.stamp import try_noop

    args = sys.argv[1:]
    if try_noop(args):
        return
    plan_args = _plain_plan(args)
    if plan_args is not None:
        _run(plan_args)
        return
    from storyboard.cli import main as cli_main

    cli_main()


class _PlanArgs:
    """The arguments of a plain ``storyboard plan``, with the CLI's defaults."""

    def __init__(self) -> None:
        self.file = Path("storyboard.toml")
        self.cache_dir: Path | None = None
        self.jobs = 4
        self.json_out = False
        self.all_rows = False


def _plain_plan(args: list[str]) -> _PlanArgs | None:
    """The parsed arguments of ``plan`` when every one is a plain one, else None (use the CLI)."""
    if not args or args[0] != "plan":
        return None
    parsed, rest, file_given = _PlanArgs(), args[1:], False
    while rest:
        arg = rest.pop(0)
        if arg == "--json":
            parsed.json_out = True
        elif arg == "--all":
            parsed.all_rows = True
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


def _run(args: _PlanArgs) -> None:
    """``cli.plan`` under ``cli.main``'s handling: one line and the exit status for an error."""
    from storyboard.errors import StoryboardError

    try:
        _plan(args)
    except StoryboardError as exc:
        if exc.exit_code != _INTERRUPTED:
            print(f"storyboard: error: {exc.message}", file=sys.stderr)
            sys.exit(exc.exit_code)
        _say_interrupted()
    except KeyboardInterrupt:
        _say_interrupted()
    except Exception:  # noqa: BLE001 - the last line of defence, as in cli.main
        import traceback

        traceback.print_exc()
        print("storyboard: internal error; please report it with the traceback above", file=sys.stderr)
        sys.exit(3)


_INTERRUPTED = 130  # cli.Exit.INTERRUPTED


def _say_interrupted() -> None:
    """cli._say_interrupted outside a build."""
    print("storyboard: interrupted", file=sys.stderr)
    sys.exit(_INTERRUPTED)


def _plan(args: _PlanArgs) -> None:
    """What ``cli.plan`` does with these arguments (no provider override, no remote flag)."""
    from storyboard.build import attach_remote, locate_board, open_project, plan_project
    from storyboard.plan_view import render_table, view

    project = open_project(locate_board(args.file), cache_dir=args.cache_dir, provider=None,
                           allow_outside=False)
    attach_remote(project, None, no_remote=False, required=False,
                  warn=lambda message: print(f"storyboard: warning: {message}", file=sys.stderr))
    steps, _ = plan_project(project)
    pv = view(project, steps, args.jobs)
    if args.json_out:
        import json

        print(json.dumps(pv.as_json(), indent=2), flush=True)
        return
    from storyboard.plan_view import PlainConsole

    # as cli._console: in a pipe or a log, lines are not wrapped at 80 columns
    render_table(pv, PlainConsole(sys.stdout, None if sys.stdout.isatty() else 200), all_rows=args.all_rows)
