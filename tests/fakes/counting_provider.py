"""CountingProvider: the fake provider, counting every submission of every process in one file.

    FAKE_SUBMISSIONS=/tmp/x/submissions   each render appends "<shot> <pid>" under flock
    FAKE_RENDER_SECONDS=1.5               and takes this long before rendering, so racing
                                          machines miss the same keys at the same moment
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from storyboard.job import RenderContext, RenderJob, RenderResult
from tests.fake_provider import FakeProvider


class CountingProvider(FakeProvider):
    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        with open(os.environ["FAKE_SUBMISSIONS"], "a") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            log.write(f"{ctx.shot_id} {os.getpid()}\n")
            log.flush()
        ctx.sleep(float(os.environ.get("FAKE_RENDER_SECONDS", "0")))
        return super().render(job, dest, ctx)
