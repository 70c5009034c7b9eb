"""The console entry point: answer a no-op build from its stamp before importing the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    """`storyboard ...`: the fast path when nothing changed, else the full CLI."""
    from storyboard.stamp import try_noop

    if try_noop(sys.argv[1:]):
        return
    from storyboard.cli import main as cli_main

    cli_main()
