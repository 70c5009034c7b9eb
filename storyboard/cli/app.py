"""The command line's frame: the typer app, shared options, opening a project, exit codes and main()."""

from __future__ import annotations

import os
import re
import sys
from enum import IntEnum
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
    from storyboard.build_command import open_for_cli

    return open_for_cli(file, cache_dir, provider, remote, no_remote, require_remote, allow_outside)


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


def _console(stderr: bool = False):  # noqa: ANN202 - rich is imported lazily
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # in a pipe or a log, lines are not wrapped at 80 columns
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 200)


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

