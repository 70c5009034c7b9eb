"""The review room's live state: one worker thread that rebuilds and re-reads, a watcher that wakes it.

    watcher (watchfiles) --- board or an asset changed ----> wants a build
                         --- the cache's actions or the lock -> wants a refresh (another build wrote)
    POST /api/pick ------ write_pick, then -----------------> wants a build
    worker: build (one at a time), then refresh: the page's JSON, its version + 1 if it changed

A build is `storyboard build` without a terminal: it spends only with consent given up front
(--yes, or --budget, counted over every build of the session). Without it a build that would
pay stops before any request and the page says what it would cost. Errors are the page's to
show; the worker never dies of one.
"""

from __future__ import annotations

import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from storyboard.errors import StoryboardError

DEBOUNCE_MS = 200
"""watchfiles waits this long after the last change of a burst (an editor saves in several writes)."""


class Room:
    """One board under review: its options, its page state, the worker and the watcher."""

    def __init__(self, board_path: Path, *, cache_dir: Path | None = None, provider: str | None = "animatic",
                 budget: float | None = None, yes: bool = False, jobs: int = 2, allow_outside: bool = False) -> None:
        self.board_path = Path(board_path).resolve()
        self.cache_dir = cache_dir
        self.provider = provider
        self.budget = budget
        self.yes = yes
        self.jobs = jobs
        self.allow_outside = allow_outside
        self.spent = 0.0
        """Estimated USD of the builds this room started (--budget covers them all)."""
        self.version = 0
        self.builds = 0
        self.state: dict[str, Any] = {}
        self.status: dict[str, Any] = {"building": False, "error": None, "message": "starting"}
        self.follow_up: dict[str, Any] | None = None
        self.media: set[str] = set()
        """Digests the page was ever shown: /media serves these and nothing else of the cache."""
        self._inputs: set[str] = set()
        self.roots = self._roots()
        self._wants: set[str] = set()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- the project --------------------------------------------------------------------------

    def open(self):  # noqa: ANN201 - a storyboard.build.Project
        from storyboard.build import open_project

        return open_project(self.board_path, cache_dir=self.cache_dir, provider=self.provider,
                            allow_outside=self.allow_outside)

    def _roots(self) -> dict[str, Path]:
        """Where files may come from: the board's folder, the film's folder and the cache."""
        from storyboard.cache import default_cache_dir

        roots = {"files": self.board_path.parent, "cache": Path(self.cache_dir or default_cache_dir(self.board_path))}
        try:
            project = self.open()
            roots["build"] = project.board.output.parent
            roots["cache"] = project.cache.root
            self._inputs = _input_files(project)
        except StoryboardError:
            roots["build"] = self.board_path.parent / "build"
        return roots

    def require_consent(self) -> None:
        """Refuse to start when rebuilds could pay and nobody said so (--yes or --budget).

        `--budget 0` reviews what is already generated and never spends.

        Raises:
            StoryboardError: a paid provider without --yes or --budget (exit 2).
        """
        from storyboard.errors import did_you_mean
        from storyboard.providers import available

        if self.provider is not None and self.provider not in (registry := available()):
            raise StoryboardError(f"--provider: unknown provider '{self.provider}'"
                                  f"{did_you_mean(self.provider, registry)}; available: {', '.join(sorted(registry))}")
        if self.yes or self.budget is not None:
            return
        from storyboard.estimate import pseudo_job

        try:
            project = self.open()
        except StoryboardError:
            if self.provider == "animatic":
                return
            paid = [self.provider or "the board's providers"]
        else:
            paid = sorted({s.provider for s in project.board.shots.values()
                           if not _free(project.providers[s.provider], pseudo_job(s))})
        if paid:
            raise StoryboardError(f"rebuilds with {', '.join(paid)} are paid: pass --budget USD to let the review "
                                  "room spend up to that in all, --yes to let it pay without asking, or --budget 0 "
                                  "to review what is generated without spending; nothing was started")

    # ---- requests from the page ------------------------------------------------------------------

    def pick(self, shot: str, number: int) -> dict[str, Any]:
        """Write the pick as `storyboard pick` does; the plan that follows; a rebuild to show it."""
        from storyboard.pick import follow_up, write_pick

        written = write_pick(self.board_path, shot, number)
        follows = follow_up(self.open()).as_json()
        with self._changed:
            self.follow_up = {"shot": shot, "pick": number, "previous": written.previous, "after_build": self.builds,
                              **follows}
        self.want("build")
        return {"shot": shot, "pick": number, "changed": written.changed, "previous": written.previous, **follows}

    def snapshot(self) -> dict[str, Any]:
        """The page's JSON: the last state read, with the live status and version."""
        with self._changed:
            status = {**self.status, "queued": sorted(self._wants)}
            return {**self.state, "version": self.version, "builds": self.builds, "status": status,
                    "follow_up": self.follow_up, "provider": self.provider}

    # ---- the worker -----------------------------------------------------------------------------

    def want(self, what: str) -> None:
        with self._changed:
            self._wants.add(what)
            self._changed.notify_all()

    def start(self, watch: bool = True) -> None:
        """Build once, then keep the page current until stop()."""
        self.want("build")
        self._threads.append(threading.Thread(target=self._work, name="storyboard-room", daemon=True))
        if watch:
            self._threads.append(threading.Thread(target=self._watch, name="storyboard-watch", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._cancel.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def wait_version(self, after: int, timeout: float) -> int:
        """Block until the version passes `after` (or timeout); the version then."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > after or self._stop.is_set(), timeout=timeout)
            return self.version

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                self._changed.wait_for(lambda: self._wants or self._stop.is_set())
                wants, self._wants = self._wants, set()
            if self._stop.is_set():
                return
            if "build" in wants:
                self._build()
            self._refresh()

    def _set_status(self, **fields: Any) -> None:
        with self._changed:
            if any(self.status.get(k) != v for k, v in fields.items()):
                self.status.update(fields)
                self.version += 1
                self._changed.notify_all()

    def _build(self) -> None:
        from storyboard.build import build, consent, plan_project, why_no_film
        from storyboard.plan_view import view

        self._set_status(building=True, message="building")
        try:
            project = self.open()
            self._inputs = _input_files(project)
            steps, planned = plan_project(project)
            pv = view(project, steps, self.jobs)
            blocking = [p for p in pv.problems if not p.startswith(("note:", "warning:"))]
            if blocking:
                raise StoryboardError(blocking[0] + "; nothing was run")
            remaining = None if self.budget is None else self.budget - self.spent
            try:
                consent(pv, budget=remaining, yes=self.yes, terminal=False)
            except StoryboardError as exc:
                raise StoryboardError(f"{exc.message} (the review room spends only with --yes or --budget; "
                                      "restart it with one)") from exc
            self.spent += pv.totals.usd()
            report = build(project, jobs=self.jobs, cancel=self._cancel, provider=self.provider,
                           planned=(steps, planned))
            with self._changed:
                self.builds += 1
            if report.failed:
                failures = "; ".join(f"{r.shot}: {r.error}" for r in report.failed)
                raise StoryboardError(f"{len(report.failed)} shot(s) failed: {failures}")
            film = report.film
            message = f"film {'stitched' if film and film.stitched else 'up to date'}" if film else \
                f"no film: {why_no_film(project, report, None)}"
            self._set_status(building=False, error=None, message=message)
        except StoryboardError as exc:
            self._set_status(building=False, error=exc.message, message="build stopped")
        except Exception as exc:  # noqa: BLE001 - the room stays up; the page and the terminal say why
            traceback.print_exc(file=sys.stderr)
            self._set_status(building=False, error=f"internal error: {type(exc).__name__}: {exc}",
                             message="build stopped")

    def _refresh(self) -> None:
        """Read the page's state again; a new version only when something on it changed."""
        from storyboard.serve.state import board_state, shas_in

        try:
            state = board_state(self.open())
        except StoryboardError as exc:
            self._set_status(error=exc.message)
            return
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            self._set_status(error=f"internal error: {type(exc).__name__}: {exc}")
            return
        with self._changed:
            self.media |= shas_in(state)
            if state != self.state:
                self.state = state
                self.version += 1
                self._changed.notify_all()

    # ---- the watcher --------------------------------------------------------------------------

    def _watch(self) -> None:
        from watchfiles import watch

        cache = self.roots["cache"]
        folders = {str(self.board_path.parent)}
        if not _within(cache, self.board_path.parent):
            cache.mkdir(parents=True, exist_ok=True)
            folders.add(str(cache))
        # assets elsewhere (--allow-outside): their folders, as the room started
        folders |= {str(Path(p).parent) for p in self._inputs if not _within(Path(p), self.board_path.parent)}
        try:
            for changes in watch(*folders, stop_event=self._stop, debounce=DEBOUNCE_MS, step=50,
                                 rust_timeout=500, yield_on_timeout=False, raise_interrupt=False):
                kinds = {self.classify(Path(path)) for _, path in changes} - {None}
                if "build" in kinds:
                    self.want("build")
                elif "refresh" in kinds and not self.status.get("building"):
                    self.want("refresh")
        except Exception as exc:  # noqa: BLE001 - no watcher: the page still works, without live updates
            self._set_status(error=f"not watching files: {exc}")

    def classify(self, path: Path) -> str | None:
        """"build" for the board or an input of it, "refresh" for a new cache entry or lock, else None."""
        from storyboard.lockfile import lock_path, log_path

        real = Path(_real(path))
        if real == self.board_path or str(real) in self._inputs:
            return "build"
        lock = lock_path(self.board_path)
        if real in (lock, log_path(lock)) or _within(real, Path(_real(self.roots["cache"])) / "actions"):
            return "refresh"
        return None


def _free(impl: Any, job: Any) -> bool:
    """Whether the provider prices `job` at nothing (an unknown price is not free)."""
    try:
        price = impl.price(job)
    except Exception:  # noqa: BLE001 - a price table that cannot answer: assume it costs
        return False
    return price is not None and price.amount == 0


def _input_files(project: Any) -> set[str]:
    """The real paths of the files the board reads: its assets and the images its shots name."""
    board = project.board
    paths = [a.path for a in board.assets.values() if getattr(a, "path", None) is not None]
    paths += [img.path for s in board.shots.values() for img in (s.first_frame, s.last_frame, *s.references)
              if getattr(img, "path", None) is not None]
    return {_real(p) for p in paths}


def _real(path: Any) -> str:
    import os

    return os.path.realpath(path)


def _within(path: Path, folder: Path) -> bool:
    import os

    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)
