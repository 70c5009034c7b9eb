"""The animatic provider: an offline, deterministic ffmpeg draft that stands in for Veo 3.1.

It enforces Veo 3.1's capabilities, so a board that drafts will also generate, and renders a
clip that honours the shot: exact duration, size and 24 fps; the first-frame image on frame 0
and the last-frame image on the last frame, crossfading between them; a slow push-in and a
palette chosen by the seed and the take; the shot id, the prompt and the reference images as
overlays kept off the first and last frames; a quiet seeded audio bed or a silent track. Same
job, same bytes.

The overlays are for the eye only: the clip keeps a second, disabled video track, its clean
plate (`media.CLEAN_PLATE`), the same footage without them, and every frame handed to another
shot (`continues`, `first_frame`, `last_frame`, a reference, at any time) is extracted from
it. A shot that starts on a frame of another never inherits its label, caption or insets.

The filter graph of a shot::

    first-frame image or seeded background ─┐                       ┌─ overlays ─ fps ─ H.264 (shown)
                                            ├─ crossfade ─ push-in ─┤
    last-frame image (when given) ──────────┘                       └─ fps ─ H.264 (clean plate)
    seeded brown noise and tone, or silence ──────────────────────────────────────────── AAC

Pictures are letterboxed (scaled to fit, padded black), never cropped, so nothing of them is
lost, and a picture of the clip's own size is used pixel for pixel. Work is done once per run
of identical frames, not per frame: see `camera_runs`.

The parts: ``look`` (what the seed and take decide, and the camera's runs of frames), ``graph`` (the
filter graph, stills and the push-in), ``overlays`` (label, caption, thumbnails), ``segment`` (new
footage and the clip an extension continues, with their sound) and ``provider`` (the job rendered).
"""

from storyboard.providers.animatic.graph import filter_value
from storyboard.providers.animatic.look import Look, camera_runs, look_for
from storyboard.providers.animatic.overlays import caption_lines
from storyboard.providers.animatic.provider import AnimaticProvider

__all__ = ["AnimaticProvider", "Look", "camera_runs", "caption_lines", "filter_value", "look_for"]
