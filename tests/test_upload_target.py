"""#11: a storyboard's local (file://) upload target must stay inside its folder, symlinks included."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyboard.errors import StoryboardFileError
from storyboard.load import load
from storyboard.providers._upload import local_target_refusal
from tests._cli import clean_env, storyboard


def board(root: Path, upload: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "storyboard.toml"
    path.write_text(f'[film]\nprovider = "uniall"\nduration = 8\n\n[providers.uniall]\nupload = "{upload}"\n'
                    'public_url = "https://cdn.example/{key}"\n\n[[shot]]\nid = "a"\nprompt = "a pier"\n')
    return path


def test_a_file_target_outside_the_folder_is_refused_with_exit_2(tmp_path):
    outside = tmp_path / "elsewhere"
    path = board(tmp_path / "film", f"file://{outside}")
    result = storyboard("validate", str(path), env=clean_env(), timeout=60)
    assert result.returncode == 2
    assert "[providers.uniall] field 'upload'" in result.stderr and "outside the storyboard's folder" in result.stderr
    assert "Traceback" not in result.stderr and not outside.exists()


@pytest.mark.parametrize("target", ["file://{root}/../escape", "file:///etc/storyboard", "{root}/../escape",
                                    "file://evil.example/{root}/uploads", "simplecache::file://{root}/uploads",
                                    "filecache://{root}/uploads"])
def test_local_targets_that_leave_the_folder_are_refused(tmp_path, target):
    root = tmp_path / "film"
    with pytest.raises(StoryboardFileError, match=r"\[providers.uniall\] field 'upload'"):
        load(board(root, target.format(root=root)))


def test_a_symlink_inside_the_folder_that_points_outside_is_refused(tmp_path):
    root = tmp_path / "film"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "uploads").symlink_to(tmp_path / "outside")
    with pytest.raises(StoryboardFileError, match="outside the storyboard's folder"):
        load(board(root, f"file://{root}/uploads/in"))


def test_a_folder_inside_and_object_stores_stay_allowed(tmp_path):
    root = tmp_path / "film"
    assert load(board(root, f"file://{root}/uploads")).providers["uniall"].upload == f"file://{root}/uploads"
    for url in ("s3://films/in", "gs://films/in", "az://films/in"):
        assert local_target_refusal(url, root) is None
    assert local_target_refusal(f"file://localhost{root}/uploads", root) is None
