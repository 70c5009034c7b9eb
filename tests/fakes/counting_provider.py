"""CountingProvider: the fake provider, counting every submission of every process in one file.

    FAKE_SUBMISSIONS=/tmp/x/submissions   each render appends "<shot> <pid>" under flock
    FAKE_RENDER_SECONDS=1.5               and takes this long before rendering, so racing
                                          machines miss the same keys at the same moment

Its clips have the film's size, as a real provider's do, so the stitcher copies them: conforming
FakeProvider's 64x36 clips to 720p was most of each machine's build in the lease tests.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from storyboard.cache import cache_key
from storyboard.job import FPS, RenderContext, RenderJob, RenderResult, frame_size, key_components
from tests.fake_provider import FakeProvider


class CountingProvider(FakeProvider):
    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        from storyboard.media import run_ffmpeg

        with open(os.environ["FAKE_SUBMISSIONS"], "a") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            log.write(f"{ctx.shot_id} {os.getpid()}\n")
            log.flush()
        ctx.sleep(float(os.environ.get("FAKE_RENDER_SECONDS", "0")))
        width, height = frame_size(job.resolution, job.aspect_ratio)
        colour = cache_key(key_components(job))[:6]
        run_ffmpeg([
            "-f", "lavfi", "-i", f"color=c=0x{colour}:s={width}x{height}:r={FPS}:d={job.duration}",
            "-f", "lavfi", "-i", f"sine=f=220:sample_rate=48000:d={job.duration}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
            "-shortest", "-fflags", "+bitexact", "-map_metadata", "-1", "-f", "mp4", "-y", str(dest)])
        return RenderResult(cost=self.price(job), operation=f"op-{ctx.shot_id}")
