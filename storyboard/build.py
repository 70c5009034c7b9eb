"""The library behind `plan` and `build`: load, compile, plan, run, stitch."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.cache import Cache, default_cache_dir
from storyboard.errors import StoryboardError
from storyboard.executor import BuildReport, EventFn, run
from storyboard.film import check_output, make_film
from storyboard.lockfile import LockFile, lock_path
from storyboard.model import Board
from storyboard.plan import Resolver, Step, plan


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

    def resolver(self) -> Resolver:
        return Resolver(self.board, self.cache, self.providers)


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
    project.cache.save_digests()
    return steps, resolver


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
          on_film_step: Any = None, provider: str | None = None) -> BuildReport:
    """Render what is not cached, then stitch the film (unless `only` narrows the build)."""
    order = select(project, only) if only else project.order
    lock = project.lock
    if lock.log.exists() or lock.log.is_symlink():
        lock.compact()  # a build was killed (or is running): fold its shots in before planning
    if not only:
        check_output(project.board, project.cache, lock.film.get("sha"))  # before any paid work
    resolver = project.resolver()
    planned = project.resolver()
    plan(project.board, order, planned, lock.shots)
    resolver.force = planned.force
    film_entry = None
    try:
        try:
            report = run(project.board, order, resolver, lock, jobs=jobs, keep_going=keep_going,
                         on_event=on_event, cancel=cancel, remote=project.remote)
        finally:
            project.cache.save_digests()
            for impl in project.providers.values():
                close = getattr(impl, "close", None)
                if close is not None:
                    close()
        if not report.failed and not only and all(s in resolver.outputs for s in project.board.sequence):
            report.film = make_film(project.board, project.cache, resolver.outputs, on_step=on_film_step,
                                    remote=project.remote, previous=lock.film.get("sha"))
            film_entry = {"key": report.film.key, "sha": report.film.sha, "output": project.board.film.output}
    finally:
        lock.compact(keep=set(project.board.shots), film=film_entry)
    if report.film is not None:
        project.cache.save_digests()
        _stamp(project, report, provider)
    return report


def _stamp(project: Project, report: BuildReport, provider: str | None) -> None:
    """Let the next identical `storyboard build` answer from stats alone (storyboard/stamp.py)."""
    from storyboard import __version__
    from storyboard.stamp import write_stamp

    board, cache = project.board, project.cache
    files = [a.path for a in board.assets.values() if a.path is not None]
    files += [img.path for s in board.shots.values() for img in (s.first_frame, s.last_frame, *s.references)
              if getattr(img, "path", None) is not None]
    files += [project.lock.path, report.film.path, cache.object_path(report.film.sha)]
    for entry in project.lock.shots.values():
        files += [cache.object_path(entry[k]) for k in ("clip", "first", "last")]
    summary = {"shots": len(board.shots), "film": str(report.film.path), "duration": report.film.duration}
    write_stamp(cache.root, board.path, provider, sorted(set(files)), summary, __version__)
