"""Test doubles shared by the test suite: fake provider services and recording callables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storyboard.cache import FileJournal
from storyboard.job import RenderContext


class Recorder:
    """A callable that records its calls: an injected `sleep` that never sleeps, or `progress`."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)

    @property
    def firsts(self) -> list[Any]:
        """The first argument of every call (the seconds slept, the progress state)."""
        return [c[0] for c in self.calls]


def render_context(tmp_path: Path, *, shot_id: str = "shot", inputs: dict[str, Path] | None = None,
                   handles: dict[str, dict[str, Any]] | None = None, journal: str = "job") -> RenderContext:
    """A RenderContext with a FileJournal under `tmp_path` and recording `sleep` and `progress`."""
    return RenderContext(shot_id=shot_id, inputs=dict(inputs or {}),
                         journal=FileJournal(tmp_path / "journal" / f"{journal}.json"),
                         progress=Recorder(), sleep=Recorder(), handles=dict(handles or {}))
