"""The command line's surface: version, help, validate, graph and schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyboard import __version__, cli
from tests._cli import storyboard

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "lighthouse" / "storyboard.toml"


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """The entry point in-process: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["storyboard", *argv])
    monkeypatch.setitem(cli._state, "verbose", False)
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return storyboard(*args, cwd=ROOT, timeout=60, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "100"})


def test_version(capsys, monkeypatch) -> None:
    code, out, err = run_main(["--version"], capsys, monkeypatch)
    assert code == 0
    assert out.strip() == f"storyboard {__version__}"


def test_module_help() -> None:
    proc = run_module("--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    for command in ("validate", "plan", "build", "graph", "schema"):
        assert command in proc.stdout


def test_no_arguments_shows_help(capsys, monkeypatch) -> None:
    code, out, err = run_main([], capsys, monkeypatch)
    assert code in (0, 2)
    assert "Usage" in out + err
    assert "Traceback" not in err


def test_unknown_command_is_a_usage_error(capsys, monkeypatch) -> None:
    code, out, err = run_main(["valdiate", str(EXAMPLE)], capsys, monkeypatch)
    assert code == 2
    assert "valdiate" in err and "Traceback" not in err


def test_bad_option_value_is_a_usage_error(capsys, monkeypatch) -> None:
    code, out, err = run_main(["graph", "--format", "svg", str(EXAMPLE)], capsys, monkeypatch)
    assert code == 2
    assert "svg" in err and "Traceback" not in err


def test_validate_the_example(capsys, monkeypatch) -> None:
    code, out, err = run_main(["validate", str(EXAMPLE)], capsys, monkeypatch)
    assert code == 0, err
    assert out.strip() == f"{EXAMPLE}: ok (5 shots, film of 4)"


def test_graph_mermaid_of_the_example(tmp_path: Path, capsys, monkeypatch) -> None:
    code, out, err = run_main(["graph", "--format", "mermaid", "--cache-dir", str(tmp_path / "cache"), str(EXAMPLE)],
                              capsys, monkeypatch)
    assert code == 0, err
    assert out.startswith("flowchart")
    assert "s_arrival -->|continues| s_climb" in out
    assert "s_climb -->|extends| s_storm" in out
    assert "s_storm --> film_node" in out


def test_graph_text_and_dot_of_the_example(tmp_path: Path, capsys, monkeypatch) -> None:
    cache = str(tmp_path / "cache")
    code, out, err = run_main(["graph", "--cache-dir", cache, str(EXAMPLE)], capsys, monkeypatch)
    assert code == 0, err
    assert out.splitlines()[-1] == "film <- arrival, storm, lamp, dawn"
    code, out, err = run_main(["graph", "-f", "dot", "--cache-dir", cache, str(EXAMPLE)], capsys, monkeypatch)
    assert code == 0, err
    assert out.startswith("digraph storyboard {")
    assert '"arrival" -> "dawn" [label="first frame"];' in out


def test_graph_of_an_invalid_file_is_a_clean_error(capsys, monkeypatch) -> None:
    bad = ROOT / "tests" / "corpus" / "cycle-two.toml"
    code, out, err = run_main(["graph", str(bad)], capsys, monkeypatch)
    assert code == 2
    assert "cycle" in err and "Traceback" not in err


def test_schema_prints_json(capsys, monkeypatch) -> None:
    code, out, err = run_main(["schema"], capsys, monkeypatch)
    assert code == 0, err
    schema = json.loads(out)
    assert schema["title"] == "storyboard"
    assert {"film", "shot", "edit", "assets", "vars", "providers"} <= set(schema["properties"])
