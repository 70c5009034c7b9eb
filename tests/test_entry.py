"""The entry point's plain `plan` path answers exactly as the typer CLI does, without importing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BOARD = """
[film]
duration = 4
seed = 5

[[shot]]
id = "one"
prompt = "a boat leaves the harbour"

[[shot]]
id = "two"
continues = "one"
prompt = "the boat reaches open sea"
"""

VIA_ENTRY = """
import sys
from storyboard.entry import main
sys.argv[0] = "storyboard"
try:
    main()
finally:  # also after sys.exit
    print("typer imported" if "typer" in sys.modules else "no typer", file=sys.stderr)
"""
VIA_CLI = "import sys; from storyboard.cli import main; sys.argv[0] = 'storyboard'; main()"


def run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("entry") / "storyboard.toml"
    path.write_text(BOARD)
    return path


@pytest.mark.parametrize("args", [
    ("plan",), ("plan", "storyboard.toml", "--json"), ("plan", "--all", "--jobs", "2", "storyboard.toml"),
    ("plan", "missing.toml"), ("plan", "--cache-dir", "elsewhere", "--json"),
])
def test_plain_plan_skips_typer_and_answers_as_the_cli(board, args):
    fast, full = run(VIA_ENTRY, *args, cwd=board.parent), run(VIA_CLI, *args, cwd=board.parent)
    assert fast.stderr.endswith("no typer\n")
    assert (fast.returncode, fast.stdout, fast.stderr.removesuffix("no typer\n")) == \
        (full.returncode, full.stdout, full.stderr)
    assert fast.returncode == (2 if "missing.toml" in args else 0)


@pytest.mark.parametrize("args", [("plan", "--jobs", "0"), ("plan", "-v"), ("plan", "a.toml", "b.toml"),
                                  ("plan", "--help"), ("plan", "--provider", "animatic")])
def test_other_arguments_go_to_the_cli(board, args):
    fast, full = run(VIA_ENTRY, *args, cwd=board.parent), run(VIA_CLI, *args, cwd=board.parent)
    assert fast.stderr.endswith("typer imported\n")
    assert (fast.returncode, fast.stdout) == (full.returncode, full.stdout)
