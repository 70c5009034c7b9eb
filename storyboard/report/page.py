"""The report's page: the cards laid out by the template, written atomically where the film is."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.cache import atomic_write_bytes
from storyboard.estimate import format_price
from storyboard.job import Price
from storyboard.report.cards import (
    PSNR_FLAG,
    SSIM_FLAG,
    Cut,
    FilmCard,
    ShotCard,
    clip_url,
    film_card,
    judge_cut,
    locate_in_film,
    place,
    shot_card,
)
from storyboard.report.frames import THUMB_WIDTH, thumbnail

if TYPE_CHECKING:
    from storyboard.build import Project
    from storyboard.executor import BuildReport


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
    cards = {row.shot: shot_card(project, resolver, step, row, build) for step, row in zip(steps, plan.rows)}
    board = project.board
    pairs = list(zip(board.sequence, board.sequence[1:]))
    # Decoding PNGs and scoring frames release the GIL: a few threads make big boards quick.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        frames = sorted({sha for card in cards.values() for sha in (card.first, card.last) if sha})
        uris = dict(zip(frames, pool.map(lambda sha: thumbnail(project.cache.object_path(sha)), frames)))
        joins = list(pool.map(lambda pair: judge_cut(project, resolver, *pair), pairs))
    for card in cards.values():
        card.first, card.last = uris.get(card.first or ""), uris.get(card.last or "")
        card.clip = clip_url(project, resolver, card.id, out)
    extended_by = {s.extends: s.id for s in board.shots.values() if s.extends}
    for shot_id, card in cards.items():
        if shot_id not in board.sequence and shot_id in extended_by:
            card.note = f"not in the film: '{extended_by[shot_id]}' extends it and plays in its place"
        elif shot_id not in board.sequence:
            card.note = "not in the film's sequence"

    placed = [place(cards[shot_id], number, start)
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
    film = film_card(project, resolver, out)
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


def _sum(by_unit: dict[str, float]) -> str:
    return " + ".join(format_price(Price(amount, unit)) for unit, amount in sorted(by_unit.items()))


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
