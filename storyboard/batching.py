"""Which candidates of a shot one provider request carries, and what a resumed request lands.

A request for several candidates (Vertex `sampleCount`, Azerion `n`) is journaled under its first
candidate's key with the numbers it asked for. Whatever `takes` says by the time a build resumes
it, every video it holds was paid for: each lands under its own candidate's key (storyboard.takes),
those past `takes` included. A `build --force` batch goes into the lock the moment its create may
have been charged, so a build killed before the shot lands resumes that batch, not the old one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from storyboard.job import RenderJob
from storyboard.lockfile import LockFile
from storyboard.plan import Resolver

Candidate = tuple[int, RenderJob, str]
"""(number, job, cache key) of one candidate, as Resolver.candidates lists them."""


def journaled_asks(resolver: Resolver, key: str) -> list[int]:
    """The candidate numbers the request journaled under `key` asked for ([] if none is, or it did not say)."""
    entry = resolver.cache.journal(key).read() or {}
    asked = entry.get("candidates") if entry.get("operation") else None
    if not isinstance(asked, list) or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 64
                                              for n in asked):
        return []  # the journal is the cache's, but a hand-edited one must not make us land nonsense
    return list(dict.fromkeys(asked))


def extra_candidates(resolver: Resolver, candidates: list[Candidate]) -> list[Candidate]:
    """(number, job, key) of the candidates a journaled request of this shot asked for that are past its
    `takes` now: their videos were paid for, so the resumed request lands them as well."""
    known = {number for number, _job, _key in candidates}
    job = candidates[0][1]
    extra = []
    for _number, _job, key in candidates:
        for number in journaled_asks(resolver, key):
            if number not in known:
                known.add(number)
                other = replace(job, candidate=number)
                extra.append((number, other, resolver.key(other)))
    return extra


def group_requests(resolver: Resolver, todo: list[Candidate], every: list[Candidate],
                   size: int) -> list[list[Candidate]]:
    """The missing candidates grouped into requests of at most `size`; a request in the journal comes
    back whole (each candidate it asked for, in its order), so no video it holds is lost."""
    by_number = {c[0]: c for c in every}
    groups, taken = [], set()
    for number, _job, key in todo:
        asked = journaled_asks(resolver, key)
        if number in taken or not asked or asked[0] != number or not all(n in by_number for n in asked):
            continue
        groups.append([by_number[n] for n in asked])
        taken.update(asked)
    left = [c for c in todo if c[0] not in taken]
    return groups + [left[i:i + size] for i in range(0, len(left), size)]


def forced_batch_noter(lock: LockFile, shot_id: str, batch: int) -> Callable[[], None]:
    """What to call once a create of the shot may have been paid for: a `build --force` batch newer than
    the lock's goes into the lock there and then, so a build killed before the shot lands keys the shot
    with that batch next time and resumes the journaled request rather than orphaning it. (A shot the
    lock has never recorded has no entry to bump: its forced batch is noted when it lands.)"""

    def note() -> None:
        previous = lock.shots.get(shot_id)
        if isinstance(previous, dict) and isinstance(previous.get("key"), str) \
                and batch > (previous.get("batch") if isinstance(previous.get("batch"), int) else 0):
            lock.record_shot(shot_id, {**previous, "batch": batch}, durable=True)

    return note


class NotingJournal:
    """A journal that calls `note` before each write (an operation, or a create whose answer was lost):
    a create was sent and may be charged."""

    def __init__(self, inner: Any, note: Callable[[], None]) -> None:
        self._inner, self._note = inner, note

    def read(self) -> dict[str, Any] | None:
        return self._inner.read()

    def write(self, entry: dict[str, Any]) -> None:
        self._note()
        self._inner.write(entry)

    def clear(self) -> None:
        self._inner.clear()
