"""`storyboard pick`: write `pick = N` into a shot of the storyboard, and say what follows.

The storyboard is the user's file, written by hand and reviewed in diffs, so the edit is
surgical: tomlkit keeps every comment, blank line, indent and quote of the file, and only the
shot's `pick` line changes (an existing `pick` keeps its comment; a new one goes on the line
after `takes`, or after the shot's last key, with that line's indent and line ending). The
file is replaced atomically: a reader (the review room's watcher, an editor) sees the old
file or the new one, never half of it.

What follows a pick is the plan's business: the picked candidate is already a cache entry
when it was built, so usually only the shots that use its frames and the film change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.errors import StoryboardFileError, did_you_mean

_WRITING = threading.Lock()
"""One read-modify-write of a board at a time in this process (the review room's clicks)."""


@dataclass(frozen=True)
class PickWritten:
    """What write_pick did."""

    path: Path
    shot: str
    number: int
    previous: int | None
    """The `pick` the file said before (None: it said nothing, so candidate 1)."""

    @property
    def changed(self) -> bool:
        return self.previous != self.number


@dataclass
class FollowUp:
    """What the next build does after a pick: the shots it runs and what happens to the film."""

    runs: list[dict[str, str]] = field(default_factory=list)
    """{shot, status, reason} of every shot the plan does not find cached, in run order."""
    film: str = "unchanged"
    """"unchanged", "cached" (stitched before: placed, not stitched) or "re-stitches"."""
    film_reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "film": self.film, "film_reason": self.film_reason}

    def lines(self) -> list[str]:
        """The plan that follows, for a terminal."""
        if not self.runs:
            out = ["no shot to generate: every shot it needs is cached"]
        else:
            width = max(len(r["shot"]) for r in self.runs)
            out = [f"{len(self.runs)} shot(s) to run:"]
            out += [f"  {r['shot']:<{width}}  {r['status']}: {r['reason']}" for r in self.runs]
        out.append(f"film: {self.film}" + (f" ({self.film_reason})" if self.film_reason else ""))
        return out


def write_pick(board_path: str | Path, shot_id: str, number: int) -> PickWritten:
    """Set `pick = number` on the shot `shot_id` of the board file, keeping the rest byte for byte.

    Raises:
        StoryboardFileError: the file is not TOML, has no such shot (did-you-mean), or `number`
            is not a candidate of it (1..takes); exit 2, nothing written.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    from storyboard.cache import atomic_write_bytes
    from storyboard.problems import SourceLines

    path = Path(board_path).resolve()  # a symlinked board is edited where it lives, the link kept
    with _WRITING:
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
            doc = tomlkit.parse(text)
        except OSError as exc:
            raise StoryboardFileError(f"{board_path}: cannot read the storyboard: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise StoryboardFileError(f"{board_path}: not UTF-8 text") from exc
        except TOMLKitError as exc:
            raise StoryboardFileError(f"{board_path}: not valid TOML: {exc}") from exc
        index, table = _find_shot(board_path, doc, shot_id)
        lines = SourceLines(text)
        where = f"{board_path}:{lines.line('shot', index, 'id') or lines.line('shot', index) or '?'}"
        takes = table.get("takes", 1)
        if not isinstance(takes, int) or isinstance(takes, bool) or takes < 1:
            raise StoryboardFileError(f"{where}: shot '{shot_id}': field 'takes' must be a whole number from 1; "
                                      "fix it before picking")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= takes:
            hint = f"pick a candidate from 1 to {takes}" if takes > 1 else \
                "it has one candidate (takes = 1): raise `takes` to generate more"
            raise StoryboardFileError(f"{where}: shot '{shot_id}': no candidate {number}: {hint}")
        previous = table.get("pick")
        previous = int(previous) if isinstance(previous, int) and not isinstance(previous, bool) else None
        _set_pick(table, number)
        new = tomlkit.dumps(doc)
        if new != text:
            atomic_write_bytes(path, new.encode("utf-8"))
    return PickWritten(Path(board_path), shot_id, number, previous)


def _find_shot(board_path: str | Path, doc: Any, shot_id: str) -> tuple[int, Any]:
    """The index and tomlkit table of the shot whose id is `shot_id`."""
    shots = doc.get("shot")
    tables = list(shots) if isinstance(shots, list) else []
    ids = [str(t.get("id")) for t in tables if isinstance(t, dict) and "id" in t]
    matches = [i for i, t in enumerate(tables) if isinstance(t, dict) and t.get("id") == shot_id]
    if not matches:
        raise StoryboardFileError(f"{board_path}: no shot '{shot_id}'{did_you_mean(shot_id, ids)}"
                                  + (f"; shots: {', '.join(ids)}" if ids and len(ids) <= 12 else ""))
    if len(matches) > 1:
        raise StoryboardFileError(f"{board_path}: shot '{shot_id}' appears {len(matches)} times: ids must be unique")
    return matches[0], tables[matches[0]]


def _set_pick(table: Any, number: int) -> None:
    """Change `pick` in place (its comment stays) or add it on its own line after `takes` or the last key."""
    import tomlkit
    from tomlkit.items import InlineTable

    if "pick" in table or isinstance(table, InlineTable):
        table["pick"] = number
        return
    from tomlkit.items import AoT, Table

    body = table.value  # the table's Container: keys, comments and whitespace in file order
    # a `[shot.first_frame]` sub-table ends the shot's own lines: a key after it would land inside it
    keys = [k.key for k, v in body.body if k is not None and not isinstance(v, (Table, AoT))]
    if not keys:
        table.add("pick", number)
        return
    anchor = "takes" if "takes" in keys else keys[-1]
    before = body.item(anchor)
    item = tomlkit.item(number)
    item.trivia.indent = before.trivia.indent
    trail = before.trivia.trail
    if "\n" not in trail:  # the last line of a file with no final newline: give the anchor one
        trail = "\r\n" if "\r\n" in body.as_string() else "\n"
        before.trivia.trail = trail
        item.trivia.trail = ""
    else:
        item.trivia.trail = "\r\n" if trail.endswith("\r\n") else "\n"
    body._insert_after(anchor, "pick", item)  # tomlkit has no public insert-at-position


def follow_up(project: Any) -> FollowUp:
    """What a build of `project` (storyboard.build.open_project) would do now: shots to run, the film."""
    from storyboard.build import plan_project
    from storyboard.edit.film import film_key, film_timeline
    from storyboard.plan import CACHED

    steps, resolver = plan_project(project)
    out = FollowUp(runs=[{"shot": s.shot, "status": s.status, "reason": s.reason}
                         for s in steps if s.status != CACHED])
    board = project.board
    pending = [s for s in board.sequence if s not in resolver.outputs]
    if pending:
        out.film = "re-stitches"
        out.film_reason = f"after {', '.join(pending)}"
        return out
    key = film_key(board, film_timeline(board, project.cache, resolver.outputs))
    if key == project.lock.film.get("key"):
        out.film, out.film_reason = "unchanged", "the same clips as the last build"
    elif project.cache.get_action(key) is not None:
        out.film, out.film_reason = "cached", "these clips were stitched before: the film is placed, not stitched"
    else:
        out.film, out.film_reason = "re-stitches", "a clip of the film changed"
    return out
