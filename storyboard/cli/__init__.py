"""The command line: parse arguments, call the library, map errors to exit codes.

``app`` holds the typer app, the shared options and ``main``; the commands live by what they do:
``planning`` (validate, graph, schema, plan, init), ``building`` (build, push, pull, gc) and
``reviewing`` (takes, pick, serve, report, export). Importing this package registers them all.
"""

# importing the command modules registers their commands, in the order `--help` lists them
from storyboard.cli import planning  # noqa: F401, I001
from storyboard.cli import building  # noqa: F401
from storyboard.cli import reviewing  # noqa: F401
from storyboard.cli.app import Exit, _say_interrupted, _state, app, main

__all__ = ["Exit", "_say_interrupted", "_state", "app", "main"]
