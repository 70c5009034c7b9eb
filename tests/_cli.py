"""`storyboard ARGS` run as a user's script runs it: a fresh interpreter, no terminal, output captured.

One runner for the tests that check the command line from outside (exit status, stdout, stderr,
files written), so each of them does not grow its own copy with its own quirks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def storyboard(*args: str, env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
               yes: bool = False, timeout: float = 300,
               stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """Run `python -m storyboard ARGS`; `yes` adds `--yes` to a build (paid work without a terminal needs it).

    `env` is the whole environment (default: this process's); stdin is no terminal unless given.
    """
    if yes and args[:1] == ("build",):
        args = (*args, "--yes")
    return subprocess.run([sys.executable, "-m", "storyboard", *args], capture_output=True, text=True,
                          env=None if env is None else dict(env), cwd=cwd, stdin=stdin, timeout=timeout)


KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without provider keys or STORYBOARD_* settings, plus `extra`.

    A developer's own key or settings must neither leak into a test nor change what it sees.
    """
    env = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("STORYBOARD_")}
    return {**env, **extra}
