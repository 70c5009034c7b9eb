"""The committed JSON schema matches the models, and Taplo accepts every example against it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storyboard.schema import schema_json

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "storyboard.schema.json"
PACKAGED = ROOT / "storyboard" / "data" / "storyboard.schema.json"
"""The copy storyboard.spec_tables checks files against (an installed package has no schemas/ folder)."""
EXAMPLES = sorted((ROOT / "examples").glob("*/storyboard.toml"))
REGENERATE = "run `storyboard schema > schemas/storyboard.schema.json` and commit the result"


def taplo() -> str:
    """The taplo binary of the `taplo` PyPI package, next to this interpreter (else on PATH)."""
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin", Path(sys.prefix) / "Scripts"):
        for name in ("taplo", "taplo.exe"):
            if (folder / name).is_file():
                return str(folder / name)
    found = shutil.which("taplo")
    if found is None:
        pytest.fail("taplo is not installed: pip install -e '.[test]' (the taplo package ships the binary)")
    return found


def run_taplo(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # --no-auto-config: a stray .taplo.toml must not change what is checked
    return subprocess.run([taplo(), "check", "--no-auto-config", "--colors", "never", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "RUST_LOG": "error"})


def test_committed_schema_is_up_to_date() -> None:
    assert SCHEMA.is_file(), f"{SCHEMA.relative_to(ROOT)} is missing: {REGENERATE}"
    assert SCHEMA.read_text(encoding="utf-8") == schema_json(), f"the committed schema is stale: {REGENERATE}"
    assert PACKAGED.read_text(encoding="utf-8") == schema_json(), \
        f"{PACKAGED.relative_to(ROOT)} is stale: copy schemas/storyboard.schema.json there"


def test_schema_is_strict_json_schema() -> None:
    schema = json.loads(schema_json())
    assert schema["$schema"].startswith("http://json-schema.org/")
    assert schema["additionalProperties"] is False
    for name in ("Film", "ShotSpec", "Edit", "FrameRef"):
        assert schema["$defs"][name]["additionalProperties"] is False, name
    assert schema_json() == schema_json(), "the schema must be stable"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_points_at_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"#:schema\s+(\S+)\s*", first)
    assert match, f"{path}: the first line should be '#:schema <relative path to the schema>'"
    assert (path.parent / match.group(1)).resolve() == SCHEMA.resolve()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_passes_taplo(path: Path) -> None:
    with_flag = run_taplo("--schema", SCHEMA.as_uri(), path)
    assert with_flag.returncode == 0, with_flag.stdout + with_flag.stderr
    by_directive = run_taplo(path)  # the #:schema line alone
    assert by_directive.returncode == 0, by_directive.stdout + by_directive.stderr


@pytest.mark.parametrize(("change", "complaint"), [
    (('title = "The', 'titel = "The'), "titel"),
    (('resolution = "720p"', 'resolution = "8k"'), "8k"),
    (('id = "dawn"', 'id = "dawn"\nduraton = 8'), "duraton"),
])
def test_taplo_rejects_a_bad_file(tmp_path: Path, change: tuple[str, str], complaint: str) -> None:
    """Proves the taplo check above can fail: the same example, broken, against the same schema."""
    example = ROOT / "examples" / "lighthouse" / "storyboard.toml"
    text = example.read_text(encoding="utf-8")
    assert change[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    result = run_taplo("--schema", SCHEMA.as_uri(), bad)
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr
    # the #:schema directive, made absolute for the copy, is honoured too
    bad.write_text(re.sub(r"^#:schema .*", f"#:schema {SCHEMA.as_posix()}", bad.read_text(), count=1))
    assert run_taplo(bad).returncode != 0
