"""Plugins' entry points are read as importlib.metadata reads them, without importing it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from storyboard.providers import ENTRY_POINT_GROUP
from storyboard.providers.plugins import entry_points


def dist(folder: Path, name: str, text: str, suffix: str = ".dist-info") -> None:
    info = folder / f"{name}{suffix}"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.partition('-')[0]}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(text)


def by_importlib(path: list[str]) -> list[tuple[str, str]]:
    """What importlib.metadata lists with `path` as the whole search path (in a process of its own)."""
    code = ("import json, sys; from importlib.metadata import entry_points; sys.path[:] = json.loads(sys.argv[1]); "
            f"print(json.dumps([(ep.name, ep.value) for ep in entry_points(group={ENTRY_POINT_GROUP!r})]))")
    out = subprocess.run([sys.executable, "-S", "-c", code, json.dumps(path)], capture_output=True, text=True,
                         check=True)
    return [tuple(pair) for pair in json.loads(out.stdout)]


def test_the_same_plugins_as_importlib_metadata_in_the_same_order(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    dist(one, "first_plugin-1.0", "[storyboard.providers]\nalpha = a.mod:Alpha\n\n[console_scripts]\nx = y:z\n")
    dist(one, "other-2.0", "# a comment\n[storyboard.providers]\n beta=b.mod:Beta \ngamma = c:G [extra]\n")
    dist(one, "nothing-1.0", "[console_scripts]\nalpha = no:No\n")
    dist(one, "old_style-0.1", "[storyboard.providers]\ndelta = d:D\n", suffix=".egg-info")
    dist(two, "First.Plugin-9.0", "[storyboard.providers]\nalpha = shadowed:Never\n")  # the same name, later
    dist(two, "third-1.0", "[storyboard.providers]\nepsilon = e:E\n")
    (tmp_path / "plain").mkdir()
    path = [str(one), str(tmp_path / "missing"), str(tmp_path / "plain"), str(two)]
    ours = entry_points(ENTRY_POINT_GROUP, tuple(path))
    assert ours is not None
    assert sorted(ours) == sorted(by_importlib(path))
    assert {name for name, _ in ours} == {"alpha", "beta", "gamma", "delta", "epsilon"}
    assert ("alpha", "a.mod:Alpha") in ours


def test_a_zip_on_the_path_is_left_to_importlib_metadata(tmp_path: Path) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zipped.writestr("zipped-1.0.dist-info/entry_points.txt", "[storyboard.providers]\nzeta = z:Z\n")
    assert entry_points(ENTRY_POINT_GROUP, (str(archive),)) is None
    assert by_importlib([str(archive)]) == [("zeta", "z:Z")]


def test_opening_a_board_does_not_import_importlib_metadata(tmp_path: Path) -> None:
    board = tmp_path / "storyboard.toml"
    board.write_text('[[shot]]\nid = "a"\nprompt = "a lighthouse"\n')
    code = ("import sys; from storyboard.build import open_project; open_project(sys.argv[1]); "
            "print('importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(board)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
