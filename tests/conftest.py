"""Shared fixtures: boards written into tmp_path, and the fake provider registered."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.fake_provider import FakeProvider

pytest_plugins = ["tests.fakes.google_server"]


@pytest.fixture
def fake_provider(monkeypatch: pytest.MonkeyPatch) -> type[FakeProvider]:
    """Register `provider = "fake"` and reset its call log."""
    import storyboard.providers as providers

    monkeypatch.setitem(providers.BUILTIN, "fake", "tests.fake_provider:FakeProvider")
    FakeProvider.reset()
    return FakeProvider


@pytest.fixture
def write_board(tmp_path: Path):
    """write_board(toml_text, **files) -> path of storyboard.toml in a fresh folder."""

    def write(text: str, folder: str = "board", **images: tuple[int, int, int]) -> Path:
        root = tmp_path / folder
        (root / "assets").mkdir(parents=True, exist_ok=True)
        for name, colour in images.items():
            from PIL import Image

            Image.new("RGB", (64, 36), colour).save(root / "assets" / f"{name}.png")
        path = root / "storyboard.toml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a `storyboard` subprocess that finds the fake provider through a real entry point."""
    import os

    site = tmp_path_factory.mktemp("site")
    dist = site / "fake_provider-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-provider\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[storyboard.providers]\nfake = tests.fake_provider:FakeProvider\n")
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join([str(site), str(root), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}
