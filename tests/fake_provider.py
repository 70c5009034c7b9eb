"""FakeProvider: renders tiny real clips fast and records every job it was asked for."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from storyboard.cache import cache_key
from storyboard.job import (EXTENSION_SECONDS, Capabilities, Price, RenderContext, RenderJob, RenderResult,
                            key_components)
from storyboard.providers import ProviderSettings


class FakeProvider:
    name = "fake"
    default_model = "fake-1"
    key_env = ()
    Settings = ProviderSettings
    labels_output = False
    calls: list[tuple[str, RenderJob]] = []
    fail_prompts: set[str] = set()
    _mutex = threading.Lock()

    def __init__(self, settings=None, **kwargs) -> None:
        self.settings = settings

    @classmethod
    def reset(cls) -> None:
        cls.calls = []
        cls.fail_prompts = set()

    def capabilities(self, model: str) -> Capabilities:
        # Veo's, plus 360p: a test whose film's size is not the point stitches it at a quarter of 720p's cost
        return Capabilities(resolutions=frozenset({"360p", "720p", "1080p", "4k"}),
                            extension_resolutions=frozenset({"360p", "720p"}))

    def price(self, job: RenderJob) -> Price:
        return Price(0.5 * job.duration)

    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        from storyboard.errors import ProviderError
        from storyboard.media import probe, run_ffmpeg

        with self._mutex:
            type(self).calls.append((ctx.shot_id, job))
        if "[hang]" in job.prompt:
            ctx.progress("rendering", None)
            ctx.sleep(600)  # a slow remote job: interruptible through ctx.sleep
        markers = self.fail_prompts | ({os.environ["FAKE_FAIL_MARKER"]} if os.environ.get("FAKE_FAIL_MARKER") else set())
        if any(marker in job.prompt for marker in markers):
            raise ProviderError(f"shot '{ctx.shot_id}': fake refused the prompt", provider="fake")
        seconds = float(job.duration)
        if job.extends:
            info = probe(ctx.input_path(job.extends))
            seconds = info.frames / 24 + EXTENSION_SECONDS
        colour = cache_key(key_components(job))[:6]
        run_ffmpeg([
            "-f", "lavfi", "-i", f"color=c=0x{colour}:s=64x36:r=24:d={seconds}",
            "-f", "lavfi", "-i", f"sine=f=220:sample_rate=48000:d={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-ac", "2", "-shortest", "-fflags", "+bitexact", "-map_metadata", "-1", "-f", "mp4", "-y", str(dest),
        ])
        return RenderResult(cost=self.price(job), operation=f"op-{ctx.shot_id}")
