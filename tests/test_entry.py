"""The entry point's plain `plan` path answers exactly as the typer CLI does, without importing it."""

from __future__ import annotations

import os
import re
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


def run(code: str, *args: str, cwd: Path, buffered: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -c code args`` in ``cwd``; ``buffered``: with stdout block-buffered, as in a pipe by default."""
    env = {k: v for k, v in os.environ.items() if not (buffered and k == "PYTHONUNBUFFERED")}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env=env)


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


WARNED = """
[film]
duration = 4

[[shot]]
id = "one"
prompt = "a boat leaves the harbour"

[[shot]]
id = "two"
extends = "one"
prompt = "the boat reaches open sea"

[edit]
sequence = ["one", "two"]
"""


def test_the_boards_warnings_are_said_as_the_cli_says_them(tmp_path):
    (tmp_path / "storyboard.toml").write_text(WARNED)
    fast, full = run(VIA_ENTRY, "plan", cwd=tmp_path), run(VIA_CLI, "plan", cwd=tmp_path)
    assert "storyboard: warning: storyboard.toml: line 14: shot 'two' extends 'one'" in full.stderr
    assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr + "no typer\n")


def no_stamp(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder / ".storyboard" / "stamps", ignore_errors=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's board, built once (two animatic shots of 4 s)."""
    folder = tmp_path_factory.mktemp("built")
    (folder / "storyboard.toml").write_text(BOARD)
    first = run(VIA_CLI, "build", "--quiet", cwd=folder)
    assert first.returncode == 0, first.stderr
    return folder


@pytest.mark.parametrize("args", [("build",), ("build", "storyboard.toml", "--jobs", "2", "-k", "--yes"),
                                  ("build", "--json"), ("build", "-q", "--cache-dir", ".storyboard")])
def test_plain_build_without_the_stamp_skips_typer_and_answers_as_the_cli(built, args):
    no_stamp(built)
    fast = run(VIA_ENTRY, *args, cwd=built)
    no_stamp(built)
    full = run(VIA_CLI, *args, cwd=built)
    assert fast.stderr.endswith("no typer\n")
    untimed = lambda text: re.sub(r'"time": [0-9.]+', '"time": T', text)  # noqa: E731 - --json's events
    assert (fast.returncode, untimed(fast.stdout), fast.stderr.removesuffix("no typer\n")) == \
        (full.returncode, untimed(full.stdout), full.stderr)
    assert fast.returncode == 0 and "rendered" not in fast.stdout
    assert ("cached" in fast.stdout) and ("up to date" in fast.stdout or '"film"' in fast.stdout)


def test_plain_build_of_a_bad_board_fails_as_the_cli_does(tmp_path):
    (tmp_path / "storyboard.toml").write_text(BOARD.replace('id = "two"', 'id = "two"\nduraton = 4'))
    fast, full = run(VIA_ENTRY, "build", cwd=tmp_path), run(VIA_CLI, "build", cwd=tmp_path)
    assert (fast.returncode, fast.stdout, fast.stderr) == (2, full.stdout, full.stderr + "no typer\n")
    assert "did you mean 'duration'" in fast.stderr


@pytest.mark.parametrize("args", [("build", "--only", "one"), ("build", "--budget", "1"), ("build", "-v"),
                                  ("build", "--provider", "animatic"), ("build", "--jobs", "0")])
def test_other_build_arguments_go_to_the_cli(built, args):
    no_stamp(built)
    assert run(VIA_ENTRY, *args, cwd=built).stderr.endswith("typer imported\n")


COLLECTOR_AT_WORK = """
import gc, sys
import storyboard.executor as executor
real_run = executor.run
def run(*args, **kwargs):  # the build's work: rendering, then the film
    print("collector on" if gc.isenabled() else "collector off", file=sys.stderr)
    return real_run(*args, **kwargs)
executor.run = run
from storyboard.entry import main
sys.argv[0] = "storyboard"
main()
"""


def test_a_plain_build_pauses_the_collector_only_while_it_loads_and_plans(tmp_path):
    """A build may run for hours: the pause that speeds up loading and planning must not outlive them."""
    (tmp_path / "storyboard.toml").write_text(BOARD.split("[[shot]]\nid = \"two\"")[0])
    done = run(COLLECTOR_AT_WORK, "build", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "collector on" in done.stderr and "collector off" not in done.stderr


VIA_PROGRAM = """
import sys, threading
sys.argv[0] = "storyboard"
if sys.argv[1] == "--with-a-thread":  # a thread still at work when the command is done
    del sys.argv[1]
    threading.Thread(target=lambda: (__import__("time").sleep(0.5), print("thread done", file=sys.stderr))).start()
from storyboard.entry import console
console()
"""


@pytest.mark.parametrize("thread", [False, True])
def test_the_program_skips_the_teardown_but_not_the_output(tmp_path, thread):
    """`storyboard` leaves with os._exit: the output is flushed first, and a live thread is joined."""
    shots = "".join(f'[[shot]]\nid = "s{i:03d}"\nprompt = "a boat, view {i}"\n' for i in range(300))
    (tmp_path / "storyboard.toml").write_text("[film]\nduration = 4\n" + shots)
    args = ("--with-a-thread",) * thread + ("plan", "--all")
    fast, full = run(VIA_PROGRAM, *args, cwd=tmp_path, buffered=True), run(VIA_CLI, "plan", "--all", cwd=tmp_path)
    assert len(full.stdout) > 16_384  # more than stdout's buffer holds: the last part is flushed at exit
    assert (fast.returncode, fast.stdout) == (full.returncode, full.stdout) == (0, full.stdout)
    lines = full.stdout.rstrip().splitlines()
    assert any(line.startswith("s299 ") for line in lines) and lines[-1].startswith("estimated wall time")
    assert fast.stderr == ("thread done\n" if thread else "")


def test_the_program_answers_a_no_op_build_from_the_stamp_in_full(built):
    """The stamp's answer is printed without a flush of its own: the program's exit flushes it."""
    run(VIA_CLI, "build", "--quiet", cwd=built)  # a stamp (another test may have removed it)
    fast = run(VIA_PROGRAM, "build", cwd=built, buffered=True)
    assert (fast.returncode, fast.stderr) == (0, "")
    assert fast.stdout.splitlines() == ["summary: 2 cached (nothing changed since the last build)",
                                        f"film: {built / 'build' / 'film.mp4'} (8.00 s, up to date)"]
