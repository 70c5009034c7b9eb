"""The library behind `plan` and `build`: load, compile, plan, run, stitch."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.cache import Cache, default_cache_dir
from storyboard.errors import StoryboardError
from storyboard.lockfile import LockFile, lock_path
from storyboard.model import Board
from storyboard.plan import CACHED, Resolver, Step, plan

if TYPE_CHECKING:  # the executor and the film are imported by build() only: plan needs neither
    from storyboard.executor import BuildReport, EventFn


@dataclass
class Project:
    """A loaded board with its graph, cache, lock and providers: everything plan and build need."""

    board: Board
    order: list[str]
    cache: Cache
    lock: LockFile
    providers: dict[str, Any]
    graph: Any
    remote: Any = None
    """A storyboard.remote.Remote shared by a team, or None."""
    forced: frozenset[str] = frozenset()
    """Shots `build --force` generates again as a new batch (storyboard.takes)."""

    def resolver(self) -> Resolver:
        from storyboard.takes import batches

        return Resolver(self.board, self.cache, self.providers, batches=batches(self.lock.shots, self.forced))


DEFAULT_BOARD = Path("storyboard.toml")


def locate_board(path: Path) -> Path:
    """The storyboard to load: `path`, or FOLDER/storyboard.toml; a clear error for a picture or a clip.

    load() would call a PNG "not UTF-8 text"; a user who typed the wrong name needs to hear that the
    file is not a storyboard at all.
    """
    from storyboard.errors import StoryboardFileError
    from storyboard.sniff import sniff

    if path == DEFAULT_BOARD and not path.exists():
        raise StoryboardFileError("no storyboard.toml in this folder: give the storyboard's file "
                                  "(storyboard COMMAND FILE), or write one with `storyboard init`")
    if path.is_dir() and (path / DEFAULT_BOARD).is_file():
        return path / DEFAULT_BOARD
    kind = {"png": "a PNG image", "jpeg": "a JPEG image", "mp4": "an MP4 video"}.get(sniff(path) or "")
    if kind is None and path.is_file():
        with open(path, "rb") as fh:
            kind = "a binary file" if b"\0" in fh.read(8192) else None
    if kind:
        raise StoryboardFileError(f"{path}: not a storyboard: it is {kind}; give the storyboard's TOML file "
                                  "(usually storyboard.toml)")
    return path


def open_project(path: str | Path, *, cache_dir: Path | None = None, provider: str | None = None,
                 allow_outside: bool = False, remote: Any = None) -> Project:
    """Load and validate the board; `provider` overrides every shot's provider."""
    from storyboard.graph import build_graph, order
    from storyboard.load import load
    from storyboard.providers import available, provider_class

    if provider is not None and provider not in (registry := available()):
        from storyboard.errors import did_you_mean

        raise StoryboardError(f"--provider: unknown provider '{provider}'{did_you_mean(provider, registry)}; "
                              f"available: {', '.join(sorted(registry))}")
    board = load(path, allow_outside=allow_outside, provider=provider)
    graph = build_graph(board)
    providers = {}
    for shot in board.shots.values():
        if shot.provider not in providers:
            cls = provider_class(shot.provider)
            providers[shot.provider] = cls(board.providers.get(shot.provider) or cls.Settings())
    cache = Cache(cache_dir or default_cache_dir(board.path))
    return Project(board, order(graph), cache, LockFile(lock_path(board.path)), providers, graph, remote)


def attach_remote(project: Project, url: str | None = None, *, no_remote: bool = False,
                  required: bool = False, warn: Any = None) -> None:
    """Use the team's remote cache: --no-remote > --remote > STORYBOARD_REMOTE > [cache] remote.

    STORYBOARD_REMOTE_WRITE=0 makes it read-only for this process (CI), like `remote_write = false`.
    """
    import os

    given = None if no_remote else (url or os.environ.get("STORYBOARD_REMOTE"))
    from_file = not no_remote and not given
    chosen = given or (project.board.cache.remote if from_file else None)
    if not chosen:
        return
    from storyboard.remote import Remote
    from storyboard.sandbox import inside

    if from_file and "://" not in chosen:
        # a folder named in the file is relative to it and must stay inside it (symlinks too)
        chosen = str(inside(project.board.root, chosen, f"{project.board.path}: [cache] remote", folder=True))
    writable = project.board.cache.remote_write and os.environ.get("STORYBOARD_REMOTE_WRITE", "1") != "0"
    kwargs = {"warn": warn} if warn else {}
    project.remote = Remote(chosen, writable=writable, required=required, **kwargs)


REMOTE_READY = True
"""The build consults project.remote (tests of the remote cache check for this)."""


def plan_project(project: Project) -> tuple[list[Step], Resolver]:
    """Every shot's decision, in run order."""
    resolver = project.resolver()
    steps = plan(project.board, project.order, resolver, project.lock.shots, remote=project.remote)
    _save_memos(project.cache)
    return steps, resolver


def _save_memos(cache: Cache) -> None:
    """Persist what this process learnt of files' digests and frames' pixel digests."""
    from storyboard.frames import frame_digests

    cache.save_digests()
    frame_digests(cache).save()


def check_shot_names(project: Project, option: str, shots: list[str]) -> None:
    """Raise StoryboardError, with a did-you-mean, for the first of `shots` the board lacks."""
    from storyboard.errors import did_you_mean

    for shot_id in shots:
        if shot_id not in project.board.shots:
            raise StoryboardError(f"{option}: unknown shot '{shot_id}'{did_you_mean(shot_id, project.board.shots)}")


def select(project: Project, only: list[str]) -> list[str]:
    """The shots needed to build `only`: those shots and everything upstream of them."""
    from storyboard.errors import did_you_mean
    from storyboard.graph import ancestors

    wanted: set[str] = set()
    for shot_id in only:
        if shot_id not in project.board.shots:
            raise StoryboardError(f"--only: unknown shot '{shot_id}'{did_you_mean(shot_id, project.board.shots)}")
        wanted |= {shot_id} | ancestors(project.graph, shot_id)
    return [s for s in project.order if s in wanted]


def build(project: Project, *, only: list[str] | None = None, jobs: int = 4, keep_going: bool = False,
          on_event: EventFn | None = None, cancel: threading.Event | None = None,
          on_film_step: Any = None, provider: str | None = None, resubmit: list[str] | None = None,
          planned: tuple[list[Step], Resolver] | None = None) -> BuildReport:
    """Render what is not cached, then stitch the film (unless `only` narrows the build).

    A shot's first event carries `reason`, plan's word for why it runs; the film's steps name
    shots, not clip hashes (see storyboard.progress.name_film_steps). `resubmit` names shots whose
    create lost its answer (maybe charged) to send again all the same. `planned` is what
    plan_project returned for this project, when the caller planned already (the CLI does, for
    the cost and the budget): the board is then planned once, and every action it found is
    looked up once.
    """
    from storyboard.edit.film import check_output, make_film
    from storyboard.executor import run

    order = select(project, only) if only else project.order
    lock = project.lock
    if lock.log.exists() or lock.log.is_symlink():
        lock.compact()  # a build was killed (or is running): fold its shots in before planning
    if not only:
        check_output(project.board, project.cache, lock.film.get("sha"))  # before any paid work
    if planned is None:
        planned_resolver = project.resolver()
        steps = plan(project.board, order, planned_resolver, lock.shots)
    else:
        steps, planned_resolver = planned
    resolver = project.resolver()
    check_shot_names(project, "--resubmit", resubmit or [])
    resolver.resubmit = set(resubmit or ())
    resolver.force = planned_resolver.force
    resolver.actions, resolver.keys = planned_resolver.actions, planned_resolver.keys
    resolver.jobs, resolver.former = planned_resolver.jobs, planned_resolver.former
    if on_event is not None:
        on_event = _with_reasons(on_event, {s.shot: s.reason for s in steps if s.status != CACHED})
    film_entry = None
    try:
        try:
            report = run(project.board, order, resolver, lock, jobs=jobs, keep_going=keep_going,
                         on_event=on_event, cancel=cancel, remote=project.remote, planned=steps)
        finally:
            _save_memos(project.cache)
            for impl in project.providers.values():
                close = getattr(impl, "close", None)
                if close is not None:
                    close()
        if not report.failed and not only and all(s in resolver.outputs for s in project.board.sequence):
            report.film = make_film(project.board, project.cache, resolver.outputs, on_step=on_film_step,
                                    remote=project.remote, previous=lock.film.get("sha"))
            film_entry = {"key": report.film.key, "sha": report.film.sha, "output": project.board.film.output}
            if report.film.subtitles is not None:
                film_entry["subtitles"] = report.film.subtitles
    finally:
        keep = set(project.board.shots)
        if lock.log.exists() or lock.log.is_symlink() or film_entry not in (None, lock.film) \
                or not keep.issuperset(lock.shots):
            lock.compact(keep=keep, film=film_entry)  # a no-op build has nothing to fold: skip the rewrite
    if report.film is not None:
        project.cache.save_digests()
        _stamp(project, report, provider)
    return report


def _with_reasons(on_event: EventFn, reasons: dict[str, str]) -> EventFn:
    """Add plan's reason to the first event of each shot that runs (a cached shot needs none)."""
    told: set[str] = set()
    mutex = threading.Lock()

    def notify(shot: str, state: str, info: dict[str, Any]) -> None:
        with mutex:
            first = shot not in told
            told.add(shot)
        if first and state != "cached" and reasons.get(shot):
            info = {**info, "reason": reasons[shot]}
        on_event(shot, state, info)

    return notify


def consent(pv: Any, *, budget: float | None, yes: bool, terminal: bool) -> str | None:
    """Whether paid work may start: None to go ahead, or the question to ask on the terminal.

    Money is spent only when someone said so: --yes, --budget (in dollars, so it cannot stand
    for credits or an unknown price) or yes at the terminal. The animatic, free, never asks.

    Raises:
        StoryboardError: over --budget, or paid work with no terminal to ask and no flag (exit 2).
    """
    from storyboard.estimate import format_price
    from storyboard.job import Price

    usd = pv.totals.usd()
    if budget is not None and usd > budget:
        raise StoryboardError(f"the estimated cost {format_price(Price(usd))} of {pv.counted()} exceeds "
                              f"--budget {format_price(Price(budget))}; nothing was run (see `storyboard plan`)")
    costs = {unit: amount for unit, amount in pv.totals.by_unit.items() if amount > 0}
    unpriced = len(pv.totals.unpriced)
    if yes or not (costs or unpriced):
        return None
    cost = " + ".join(format_price(Price(v, u)) for u, v in costs.items())
    if unpriced:
        cost += f"{' and ' if costs else ''}{unpriced} shot(s) with no known price"
    maybe = f" (and up to {pv.may_rerun} that may rerun)" if getattr(pv, "may_rerun", 0) else ""
    if terminal:
        return f"Generate {pv.counted()}{maybe} for an estimated {cost}?"
    if budget is None:
        raise StoryboardError(f"{pv.counted()}{maybe} to generate for an estimated {cost}, and no terminal to "
                              "ask: pass --yes to go ahead, or --budget USD to go ahead within a limit; "
                              "nothing was run")
    if unpriced or set(costs) - {"USD"}:
        raise StoryboardError(f"--budget counts US dollars, but the estimate is {cost}: pass --yes to go ahead; "
                              "nothing was run")
    return None


def why_no_film(project: Project, report: BuildReport, only: list[str] | None) -> str | None:
    """Why this build stitched no film, in a sentence; None when it did."""
    if report.film is not None:
        return None
    if report.failed:
        return f"{len(report.failed)} shot(s) failed"
    if only:
        left = [s for s in project.board.sequence if s not in set(select(project, only))]
        missing = f", not {', '.join(left)}" if left else ""
        return f"--only built {', '.join(only)} (and what it needs){missing}; build without --only for the film"
    return "not every shot of the film was built"


def _stamp(project: Project, report: BuildReport, provider: str | None) -> None:
    """Let the next identical `storyboard build` answer from stats alone (storyboard/stamp.py)."""
    from storyboard import __version__
    from storyboard.stamp import write_stamp

    board, cache = project.board, project.cache
    # strings, not Paths: a Path per object and sorting Paths were most of a no-op build's stamp
    files = [str(a.path) for a in board.assets.values() if a.path is not None]
    files += [str(img.path) for s in board.shots.values() for img in (s.first_frame, s.last_frame, *s.references)
              if getattr(img, "path", None) is not None]
    files += [str(project.lock.path), str(report.film.path), str(cache.object_path(report.film.sha))]
    objects = str(cache.root / "objects")  # as Cache.object_path names an object
    for entry in project.lock.shots.values():
        files += [f"{objects}{os.sep}{entry[k][:2]}{os.sep}{entry[k]}" for k in ("clip", "first", "last")]
    summary = {"shots": len(board.shots), "film": str(report.film.path), "duration": report.film.duration}
    write_stamp(cache.root, board.path, provider, sorted(set(files)), summary, __version__)  # type: ignore[arg-type]
