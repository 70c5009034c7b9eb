"""make_report(): one HTML page per board, a contact sheet of every shot and the film.

The page is self-contained except for the videos: each shot's first and last frames are
embedded as small JPEG data: URIs, while the film and each shot's clip are linked by paths
relative to the page (a film is tens of megabytes; as base64 it would be a third bigger
still, held in memory by the browser and unseekable until fully parsed). The default page
sits beside the film; the clips are the cache's own objects (`.storyboard/objects/...`),
so the page plays them where the board is built, or served from the board's folder.

The shots of the film are numbered in film order, each with the time it starts in the film
(transitions overlap the clips); shots not in the film follow, unnumbered.

At every cut of the film's sequence, the outgoing clip's last frame and the incoming clip's
first frame (the lossless PNGs in the cache) are compared:

    PSNR  over RGB, in dB; infinite when the pixels are identical
    SSIM  over luma, downsampled as Wang et al. do for frames this size, 7x7 uniform window

Only an intended hand-off is judged: where the incoming shot starts on the outgoing shot's
last frame (`continues`, or `first_frame = { shot = ..., frame = "last" }`) and the join
scores below PSNR_FLAG or SSIM_FLAG, it is flagged as a "bad join". A cut between unrelated
shots is what an edit is made of: its scores are shown, never flagged.
"""

from __future__ import annotations

import base64
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from storyboard.cache import atomic_write_bytes
from storyboard.errors import MediaError
from storyboard.estimate import format_price
from storyboard.job import EXTENSION_SECONDS, Price
from storyboard.model import Asset, FrameInput, ImageInput, Shot
from storyboard.plan import CACHED, REMOTE, RUN, WAITS
from storyboard.plan_view import INVALID

if TYPE_CHECKING:
    from storyboard.build import Project
    from storyboard.executor import BuildReport
    from storyboard.plan import Resolver, Step
    from storyboard.plan_view import Row

PSNR_FLAG = 20.0
"""Cuts below this many dB are flagged. A hand-off through an encoder scores above 40 dB."""

SSIM_FLAG = 0.80
"""Cuts whose SSIM is below this are flagged too: SSIM sees structure, PSNR sees colour.

SSIM alone forgives a change of flat colour (blue to red fields score 0.98); PSNR alone
forgives moved detail at similar brightness. Either one low is a visible jump.
"""

THUMB_WIDTH = 320
_JPEG_QUALITY = 82


@dataclass(frozen=True)
class Cut:
    """The join between two consecutive clips of the film, and how alike its two frames are.

    Attributes:
        before: the outgoing shot.
        after: the incoming shot.
        transition: "cut", "crossfade" or "fade", from `[edit]`.
        handed_off: the incoming shot starts on the outgoing shot's exact last frame
            (`continues`, or `first_frame = { shot = before, frame = "last" }`).
        psnr: dB, `inf` for identical pixels; None when either frame is not built.
        ssim: 0..1; None when either frame is not built.
    """

    kind: ClassVar[str] = "cut"
    before: str
    after: str
    transition: str
    handed_off: bool
    psnr: float | None = None
    ssim: float | None = None

    @property
    def scored(self) -> bool:
        return self.psnr is not None and self.ssim is not None

    @property
    def identical(self) -> bool:
        return self.psnr is not None and math.isinf(self.psnr)

    @property
    def flagged(self) -> bool:
        if not self.scored or self.identical:
            return False
        return self.psnr < PSNR_FLAG or self.ssim < SSIM_FLAG  # type: ignore[operator]

    @property
    def verdict(self) -> str:
        """"ok" (a hand-off that joins), "bad" (a hand-off that does not) or "cut" (no hand-off)."""
        if not self.handed_off:
            return "cut"
        return "bad" if self.flagged else "ok"


@dataclass
class ShotCard:
    """What the page shows for one shot."""

    kind: ClassVar[str] = "shot"
    id: str
    number: int | None
    """Position in the film, from 1; None for a shot not in it."""
    prompt: str
    negative_prompt: str | None
    seed: int | None
    take: int
    provider: str
    model: str
    resolution: str
    aspect_ratio: str
    status: str
    reason: str
    inputs: list[str]
    cost: str = ""
    price: Price | None = None
    """What the shot cost, when it is cached and its provider said."""
    first: str | None = None
    """The first frame as a data: URI, or None for a placeholder."""
    last: str | None = None
    stale: bool = False
    """The frames are the previous take's, from the lock."""
    placeholder: str = "not built yet"
    note: str = ""
    created: str | None = None
    length: str = ""
    clip: str | None = None
    """The clip in the cache, as a URL relative to the page; None when it is not cached."""
    start: float | None = None
    """Seconds into the film where the shot starts; None when not in it or not all built."""


@dataclass
class FilmCard:
    """The film: where it is relative to the page, and whether it is current."""

    src: str | None
    name: str
    status: str
    duration: float | None = None
    megabytes: float | None = None
    poster: str | None = None


@dataclass
class _Page:
    title: str
    board: str
    film: FilmCard
    timeline: list[ShotCard | Cut]
    others: list[ShotCard]
    counts: dict[str, int]
    spent: str
    to_spend: str
    psnr_flag: float = PSNR_FLAG
    ssim_flag: float = SSIM_FLAG
    thumb_width: int = THUMB_WIDTH
    version: str = ""


def default_report_path(project: Project) -> Path:
    """`build/<film stem>.report.html`: the film's path with a `.report.html` suffix.

    Raises:
        OutsideError: a symlinked folder on the way leads outside the board's folder (an
            explicit `--out` is the user's own choice and is not checked).
    """
    from storyboard.sandbox import inside

    board = project.board
    return inside(board.root, Path(board.film.output).with_suffix(".report.html"), f"{board.path}: the report")


def make_report(project: Project, out: Path | None = None, *, build: BuildReport | None = None) -> Path:
    """Write the board's HTML report and return its path.

    Plans the board as `storyboard plan` does (no rendering, no provider call), so each shot
    is "cached", "remote", "to run" or "invalid" with the plan's reason and price; pass the
    `build` report of a run that just finished to show which shots failed or were skipped.
    A shot not built shows its previous take's frames (from the lock, marked out of date)
    when the cache still has them, else a placeholder.

    Args:
        project: an opened board (`storyboard.build.open_project`).
        out: the HTML file to write; default `default_report_path(project)`.
        build: the outcome of a build, if one just ran.

    Raises:
        CacheError: the page cannot be written.
    """
    from storyboard import __version__
    from storyboard.build import plan_project
    from storyboard.plan_view import view

    out = Path(out) if out is not None else default_report_path(project)
    steps, resolver = plan_project(project)
    plan = view(project, steps)
    cards = {row.shot: _card(project, resolver, step, row, build) for step, row in zip(steps, plan.rows)}
    board = project.board
    pairs = list(zip(board.sequence, board.sequence[1:]))
    # Decoding PNGs and scoring frames release the GIL: a few threads make big boards quick.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        frames = sorted({sha for card in cards.values() for sha in (card.first, card.last) if sha})
        uris = dict(zip(frames, pool.map(lambda sha: thumbnail(project.cache.object_path(sha)), frames)))
        joins = list(pool.map(lambda pair: _cut(project, resolver, *pair), pairs))
    for card in cards.values():
        card.first, card.last = uris.get(card.first or ""), uris.get(card.last or "")
        card.clip = _clip_url(project, resolver, card.id, out)
    extended_by = {s.extends: s.id for s in board.shots.values() if s.extends}
    for shot_id, card in cards.items():
        if shot_id not in board.sequence and shot_id in extended_by:
            card.note = f"not in the film: '{extended_by[shot_id]}' extends it and plays in its place"
        elif shot_id not in board.sequence:
            card.note = "not in the film's sequence"

    placed = [_place(cards[shot_id], number, start)
              for number, (shot_id, start) in enumerate(zip(board.sequence, locate_in_film(project, resolver)), 1)]
    timeline: list[ShotCard | Cut] = [placed[0]]
    for join, card in zip(joins, placed[1:]):
        timeline += [join, card]
    others = [cards[s] for s in project.order if s not in board.sequence]

    counts = {"shots": len(steps)}
    spent: dict[str, float] = {}
    for card in cards.values():
        counts[card.status] = counts.get(card.status, 0) + 1
        if card.status == "cached" and card.price is not None:
            spent[card.price.unit] = spent.get(card.price.unit, 0.0) + card.price.amount
    film = _film(project, resolver, out)
    film.poster = placed[0].first
    page = _Page(
        title=board.film.title or board.path.stem,
        board=str(board.path),
        film=film,
        timeline=timeline,
        others=others,
        counts=counts,
        spent=_sum(spent) or format_price(Price(0.0)),
        to_spend=_sum(plan.totals.by_unit) or "nothing",
        version=__version__,
    )
    html = _template().render(page=page)
    try:
        atomic_write_bytes(out, html.encode("utf-8"))
        os.chmod(out, 0o644)  # the temp file it was written as is private; a page is for sharing
    except OSError as exc:
        from storyboard.errors import CacheError

        raise CacheError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    project.cache.save_digests()
    return out


# ---- frames ---------------------------------------------------------------------------------


def compare_frames(a: Path, b: Path) -> tuple[float, float]:
    """(PSNR in dB, SSIM) between two images; PSNR is `inf` when the pixels are identical.

    PSNR is over RGB at full size. SSIM is over luma (BT.601 weights) after Wang's automatic
    downsampling (average over f x f blocks, f = round(min(h, w) / 256)), with a 7x7 uniform
    window and sample covariances, as scikit-image computes it by default. Frames of different
    sizes are compared at the size of `a`.
    """
    import numpy as np
    from PIL import Image

    with Image.open(a) as ia, Image.open(b) as ib:
        ra = ia.convert("RGB")
        rb = ib.convert("RGB")
    if rb.size != ra.size:
        rb = rb.resize(ra.size, Image.Resampling.BILINEAR)
    diff = np.subtract(np.asarray(ra), np.asarray(rb), dtype=np.int64).ravel()
    sse = int(np.dot(diff, diff))
    psnr = math.inf if sse == 0 else 10 * math.log10(255.0**2 * diff.size / sse)
    # PIL's "L" is the same BT.601 luma, computed in C
    x, y = (np.asarray(im.convert("L"), dtype=np.float64) for im in (ra, rb))
    return psnr, _ssim(_downsample(x), _downsample(y))


def _downsample(luma: Any) -> Any:
    f = max(1, round(min(luma.shape) / 256))
    if f == 1:
        return luma
    h, w = (luma.shape[0] // f) * f, (luma.shape[1] // f) * f
    return luma[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def _box_mean(x: Any, size: int = 7) -> Any:
    """Mean over every size x size window that fits (a 'valid' uniform filter), by integral image."""
    import numpy as np

    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]) / (size * size)


def _ssim(x: Any, y: Any, size: int = 7) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    if min(x.shape) < size:
        size = min(x.shape)
    norm = size * size / (size * size - 1)
    mx, my = _box_mean(x, size), _box_mean(y, size)
    vx = norm * (_box_mean(x * x, size) - mx * mx)
    vy = norm * (_box_mean(y * y, size) - my * my)
    vxy = norm * (_box_mean(x * y, size) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def thumbnail(path: Path, width: int = THUMB_WIDTH) -> str | None:
    """A JPEG data: URI of the image scaled to `width` pixels wide; None if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None
    rgb.thumbnail((width, max(1, round(width * rgb.height / rgb.width))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---- building the page ---------------------------------------------------------------------


STATUS = {CACHED: "cached", REMOTE: "remote", INVALID: "invalid", RUN: "to run", WAITS: "to run"}
"""The plan's statuses as the page groups them."""


def _card(project: Project, resolver: Resolver, step: Step, row: Row, build: BuildReport | None) -> ShotCard:
    shot = project.board.shots[step.shot]
    status, reason = STATUS.get(row.status, "to run"), row.reason
    outcome = build.shots.get(shot.id) if build is not None else None
    if outcome is not None and outcome.outcome.value in ("failed", "skipped"):
        status, reason = outcome.outcome.value, outcome.error or reason
    elif status == "to run" and row.status != "uncertain" and step.key and project.cache.journal(step.key).read():
        reason += "; a provider job is in flight and resumes on the next build"
    card = ShotCard(
        id=shot.id, number=None, prompt=shot.prompt, negative_prompt=shot.negative_prompt, seed=shot.seed,
        take=shot.take, provider=shot.provider, model=shot.model, resolution=shot.resolution,
        aspect_ratio=shot.aspect_ratio, status=status, reason=reason, inputs=_inputs(shot),
    )
    entry = resolver.outputs.get(shot.id) if row.status == CACHED else None
    locked = project.lock.shots.get(shot.id) or {}
    if entry is not None:  # hashes for now; make_report swaps in the thumbnails
        card.first, card.last = entry["outputs"]["first"], entry["outputs"]["last"]
        if entry.get("cost") is not None:
            card.price = Price(entry["cost"], entry.get("unit") or "USD")
        card.cost = format_price(card.price) if card.price else "unknown"
        card.created = entry.get("created")
        card.length = f"{entry['meta']['duration']:.2f} s" if "duration" in entry.get("meta", {}) else ""
    else:
        if row.status == REMOTE:
            card.placeholder = "in the remote cache: the next build downloads it"
        elif all(project.cache.has_object(locked.get(k, "")) for k in ("first", "last")):
            card.first, card.last, card.stale = locked["first"], locked["last"], True
        card.cost = "est. " + format_price(None if row.cost is None else Price(row.cost, row.unit or "USD"))
    if not card.length:
        extended = f"the clip of '{shot.extends}' + {EXTENSION_SECONDS} s"
        card.length = extended if shot.extends else f"{shot.duration} s"
    return card


def locate_in_film(project: Project, resolver: Resolver) -> list[float | None]:
    """Where each clip of the sequence starts in the film, in seconds; None after an unbuilt one.

    When every clip is built, as the timeline places them (trims, holds, titles, each join's
    overlap); before that, clips whole with `[edit]`'s one transition, in whole frames.
    """
    from storyboard.edit.timeline import Join
    from storyboard.job import FPS

    if (found_in_timeline := _timeline_starts(project, resolver)) is not None:
        return found_in_timeline

    t = project.board.edit.transition
    edge = Join(t.kind, 0.0 if t.kind == "cut" else t.duration).frames(FPS)
    found: list[float | None] = []
    frame: int | None = 0
    for shot_id in project.board.sequence:
        found.append(None if frame is None else frame / FPS)
        meta = (resolver.outputs.get(shot_id) or {}).get("meta") or {}
        frames = meta.get("frames") or (round(meta["duration"] * FPS) if "duration" in meta else None)
        frame = None if frame is None or frames is None else frame + frames - edge
    return found


def _timeline_starts(project: Project, resolver: Resolver) -> list[float | None] | None:
    """Each clip's start in the film as the stitcher lays out the timeline, or None when a clip is
    not built (or not in the cache)."""
    from storyboard.edit.film import film_timeline
    from storyboard.edit.timeline import ClipPiece
    from storyboard.errors import CacheError
    from storyboard.job import FPS

    board = project.board
    if not all(s in resolver.outputs for s in board.sequence):
        return None
    try:
        timeline = film_timeline(board, project.cache, resolver.outputs)
    except CacheError:
        return None
    starts = [start / FPS for piece, start in zip(timeline.pieces, timeline.starts(FPS))
              if isinstance(piece, ClipPiece)]
    return starts if len(starts) == len(board.sequence) else None


def _place(card: ShotCard, number: int, start: float | None) -> ShotCard:
    """The card at its place in the film; a shot the sequence plays again gets a copy there."""
    if card.number is not None:
        return replace(card, number=number, start=start)
    card.number, card.start = number, start
    return card


def _clip_url(project: Project, resolver: Resolver, shot_id: str, out: Path) -> str | None:
    entry = resolver.outputs.get(shot_id)
    if entry is None or not project.cache.has_object(entry["outputs"]["clip"]):
        return None
    path = project.cache.object_path(entry["outputs"]["clip"])
    return quote(Path(os.path.relpath(path.resolve(), out.resolve().parent)).as_posix())


def _inputs(shot: Shot) -> list[str]:
    def label(image: ImageInput) -> str:
        if isinstance(image, Asset):
            return f"asset '{image.name}'" if image.name else f"image {image.path or image.url}"
        assert isinstance(image, FrameInput)
        which = f"{image.frame} frame" if isinstance(image.frame, str) else f"frame at {image.frame:g} s"
        return f"the {which} of '{image.shot}'"

    lines = []
    if shot.continues:
        lines.append(f"starts on the exact last frame of '{shot.continues}'")
    elif shot.first_frame is not None:
        lines.append(f"starts on {label(shot.first_frame)}")
    if shot.last_frame is not None:
        lines.append(f"ends on {label(shot.last_frame)}")
    if shot.extends:
        lines.append(f"extends the clip of '{shot.extends}'")
    if shot.references:
        lines.append("references: " + ", ".join(label(r) for r in shot.references))
    return lines


def _sum(by_unit: dict[str, float]) -> str:
    return " + ".join(format_price(Price(amount, unit)) for unit, amount in sorted(by_unit.items()))


def _cut(project: Project, resolver: Resolver, before: str, after: str) -> Cut:
    board = project.board
    incoming = board.shots[after]
    while incoming.extends:  # an extension's clip opens with its source's clip
        incoming = board.shots[incoming.extends]
    first = incoming.first_frame
    handed_off = isinstance(first, FrameInput) and first.shot == before and first.frame == "last"
    cut = Cut(before, after, board.edit.transition.kind, handed_off)
    a, b = resolver.outputs.get(before), resolver.outputs.get(after)
    if a is None or b is None:
        return cut
    try:
        psnr, ssim = compare_frames(project.cache.object_path(a["outputs"]["last"]),
                                    project.cache.object_path(b["outputs"]["first"]))
    except OSError:
        return cut
    return Cut(before, after, cut.transition, handed_off, psnr, ssim)


def _film(project: Project, resolver: Resolver, out: Path) -> FilmCard:
    from storyboard.media import probe

    board, lock = project.board, project.lock
    path = board.output
    if not path.is_file():
        return FilmCard(None, path.name, "not built yet: run `storyboard build` to stitch it")
    rel = Path(os.path.relpath(path.resolve(), out.resolve().parent)).as_posix()
    card = FilmCard(quote(rel), path.name, "current", megabytes=path.stat().st_size / 1e6)
    try:
        card.duration = probe(path).duration
    except MediaError:
        card.status = "cannot be decoded: run `storyboard build` to stitch it again"
        return card
    current = (all(s in resolver.outputs for s in board.sequence)
               and lock.film.get("key") == _film_key(board, project.cache, resolver.outputs)
               and project.cache.digest(path) == lock.film.get("sha"))
    if not current:
        card.status = "out of date: shots changed since it was stitched; run `storyboard build`"
    return card


def _film_key(board: Any, cache: Any, outputs: Any) -> str | None:
    """The key the film of these clips and this edit has, or None when a clip is not in the cache."""
    from storyboard.edit.film import film_key, film_timeline
    from storyboard.errors import CacheError

    try:
        return film_key(board, film_timeline(board, cache, outputs))
    except CacheError:
        return None


def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("storyboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["db"] = lambda v: "∞" if math.isinf(v) else f"{v:.1f}"
    env.filters["pct"] = lambda v: f"{100 * v:.1f}%"
    env.filters["clock"] = lambda v: f"{int(v // 60)}:{v % 60:05.2f}"
    return env.get_template("report.html.j2")
