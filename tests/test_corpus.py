"""The corpus of malformed storyboards: each must fail `validate` with a clear, single-line error.

Every `tests/corpus/<case>.toml` starts with comment lines:

    # expect: shot 'climb'          (one or more; each must appear in stderr)
    # xfail: why                    (optional: a known defect of the loader, reported upstream)

The bulk runs in-process through `storyboard.cli.main` (fast); a handful run the real CLI as
a subprocess to prove the console path is the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from storyboard import cli
from tests._cli import storyboard

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = sorted(CORPUS.glob("*.toml"))
EXAMPLES = sorted((ROOT / "examples").glob("*/storyboard.toml"))
SUBPROCESS_CASES = ["toml-syntax-error", "cycle-two", "unknown-shot-continues"]


def header(path: Path, tag: str) -> list[str]:
    """The values of the leading `# tag: value` comment lines."""
    prefix = f"# {tag}:"
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [line[len(prefix):].strip() for line in text.splitlines() if line.startswith(prefix)]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run the CLI entry point in-process; returns (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["storyboard", *argv])
    monkeypatch.setitem(cli._state, "verbose", False)
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def check_error(path: Path, code: int, err: str) -> None:
    assert code == 2, f"{path.name}: exit status {code}, expected 2; stderr:\n{err}"
    assert "Traceback" not in err, err
    assert "storyboard: error:" in err, err
    assert path.name in err, f"the error does not name the file {path.name}:\n{err}"
    missing = [e for e in header(path, "expect") if e not in err]
    assert not missing, f"{path.name}: stderr lacks {missing}:\n{err}"


def case_param(path: Path):
    reasons = header(path, "xfail")
    marks = [pytest.mark.xfail(reason=reasons[0], strict=True)] if reasons else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_corpus_is_large_and_well_formed() -> None:
    assert len(CASES) >= 35
    for path in CASES:
        assert header(path, "expect"), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", [case_param(p) for p in CASES])
def test_corpus_case_fails_cleanly(path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_main(["validate", str(path)], capsys, monkeypatch)
    check_error(path, code, err)
    assert ": ok (" not in out


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_corpus_case_through_the_real_cli(name: str) -> None:
    path = CORPUS / f"{name}.toml"
    proc = storyboard("validate", str(path), cwd=ROOT, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    check_error(path, proc.returncode, proc.stderr)
    assert proc.stderr.count("storyboard: error:") == 1
    assert proc.stdout == ""


def test_verbose_shows_the_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = CORPUS / "unknown-shot-continues.toml"
    code, _, err = run_main(["--verbose", "validate", str(path)], capsys, monkeypatch)
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert "StoryboardFileError" in err or "GraphError" in err
    assert "storyboard: error:" in err
    # and without --verbose, the same file gives no traceback (state does not leak)
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err


def test_missing_file_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "nowhere.toml"
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2
    assert "nowhere.toml" in err and "no such file" in err and "Traceback" not in err


def test_there_is_an_example() -> None:
    assert EXAMPLES, "no examples/*/storyboard.toml"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_validates(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 0, err
    assert ": ok (" in out
    assert err == ""


def test_allow_outside_accepts_an_asset_beside_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The escape rule has a documented way out; the corpus case must fail only without it."""
    from PIL import Image

    Image.new("RGB", (16, 9), (1, 2, 3)).save(tmp_path / "outside.png")
    board = tmp_path / "board" / "storyboard.toml"
    board.parent.mkdir()
    board.write_text('[assets]\nx = "../outside.png"\n\n[[shot]]\nid = "a"\nprompt = "one"\nfirst_frame = "x"\n')
    code, _, err = run_main(["validate", str(board)], capsys, monkeypatch)
    assert code == 2 and "leaves the storyboard's folder" in err
    code, out, err = run_main(["validate", "--allow-outside", str(board)], capsys, monkeypatch)
    assert code == 0, err
