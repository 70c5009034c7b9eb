"""What `storyboard plan` shows: a row per shot in run order, cost and time totals."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from storyboard.errors import MissingKeyError
from storyboard.estimate import (Totals, format_price, limits_for, local_speeds, pseudo_job, render_seconds,
                                 stitch_seconds, wall_time)
from storyboard.job import EXTENSION_SECONDS, Price, frame_size
from storyboard.plan import CACHED, MAY_RERUN, REMOTE, UNCERTAIN, Step

INVALID = "invalid"


@dataclass
class Row:
    shot: str
    status: str
    reason: str
    provider: str
    model: str
    duration: int
    """Seconds the shot adds to the film: its length, or 7 for an extension."""
    cost: float | None
    unit: str | None
    key: str | None
    extends: str | None = None
    takes: int = 1
    pick: int = 1
    generate: int = 0
    """Candidates this build pays for (storyboard.takes): `cost` is theirs together."""


@dataclass
class PlanView:
    rows: list[Row]
    totals: Totals
    wall_seconds: float
    """The shots' time plus the stitch's."""
    problems: list[str]
    key_hosts: dict[str, list[str]] = field(default_factory=dict)
    """Per hosted provider used, the hosts its API key is sent to."""
    speeds: list[str] = field(default_factory=list)
    """How each local provider's render time was estimated (measured, or nominal)."""
    stitch_seconds: float = 0.0
    """Of `wall_seconds`, the time to stitch the film again when a shot of it changes."""

    @property
    def to_generate(self) -> int:
        """Shots that will certainly be generated."""
        return sum(1 for r in self.rows if r.status not in (CACHED, REMOTE, MAY_RERUN))

    @property
    def candidates_to_generate(self) -> int:
        """Videos those shots pay for: more than the shots where a shot has several takes."""
        return sum(r.generate for r in self.rows if r.status not in (CACHED, REMOTE, MAY_RERUN))

    def counted(self) -> str:
        """The shots to generate in words, with their candidates where takes make them more."""
        more = self.candidates_to_generate
        return f"{self.to_generate} shot(s)" + (f" ({more} candidates)" if more > self.to_generate else "")

    @property
    def may_rerun(self) -> int:
        """Shots whose key waits on an upstream's new output: generated unless that output is unchanged."""
        return sum(1 for r in self.rows if r.status == MAY_RERUN)

    @property
    def cached(self) -> int:
        return sum(1 for r in self.rows if r.status == CACHED)

    @property
    def remote_hits(self) -> int:
        return sum(1 for r in self.rows if r.status == REMOTE)

    def as_json(self) -> dict[str, Any]:
        return {
            "shots": [asdict(r) for r in self.rows],
            "cached": self.cached,
            "remote_hits": self.remote_hits,
            "to_generate": self.to_generate,
            "may_rerun": self.may_rerun,
            "cost": {unit: round(v, 4) for unit, v in self.totals.by_unit.items()},
            "cost_by_provider": {p: {u: round(v, 4) for u, v in units.items()}
                                 for p, units in self.totals.by_provider.items()},
            "unpriced": self.totals.unpriced,
            "wall_seconds": round(self.wall_seconds, 1),
            "stitch_seconds": round(self.stitch_seconds, 1),
            "speeds": self.speeds,
            "problems": self.problems,
            "key_hosts": self.key_hosts,
        }


def view(project: Any, steps: list[Step], jobs: int = 4) -> PlanView:
    """Price every shot that will or may run and simulate the build's wall time.

    The cost and time count the shots that may rerun too: a budget is checked against the most a
    build can spend.
    """
    from storyboard.rules import clip_lengths

    board = project.board
    lengths = clip_lengths(board)
    speeds = local_speeds(project.providers, project.lock.shots)
    totals = Totals()
    rows, problems = [], []
    missing_key: dict[str, str] = {}
    # only a provider with a shot to generate needs its key: looking for Google's credentials imports
    # google-auth and httpx (~0.4 s) and may ask the metadata server, for a plan of cached shots
    generating = {board.shots[step.shot].provider for step in steps if step.status not in (CACHED, REMOTE)}
    for name, impl in project.providers.items():
        check = getattr(impl, "check_key", None)
        if check is None or name not in generating:
            continue
        try:
            check()
        except MissingKeyError as exc:
            missing_key[name] = exc.message
    seconds: dict[str, float] = {}
    for step in steps:
        shot = board.shots[step.shot]
        impl = project.providers[shot.provider]
        status, reason = step.status, step.reason
        price = None
        generate = 0
        if status not in (CACHED, REMOTE):
            job = step.job or pseudo_job(shot)
            generate = len(step.missing) or shot.takes  # a shot that may rerun may need every candidate anew
            price = impl.price(job)
            if price is not None:
                price = Price(price.amount * generate, price.unit)
            totals.add(step.shot, shot.provider, price)
            requests = -(-generate // max(1, int(getattr(impl, "max_samples", 1))))
            seconds[step.shot] = requests * render_seconds(impl, job, lengths[step.shot], speeds.get(shot.provider))
            if shot.provider in missing_key:
                status, reason = INVALID, f"{reason}; no API key"
        if shot.takes > 1 or shot.pick > 1:
            costed = f"; {generate} to generate" if generate and generate != shot.takes else ""
            reason = f"{reason} ({shot.takes} takes, pick {shot.pick}{costed})"
        rows.append(Row(step.shot, status, reason, shot.provider, shot.model,
                        EXTENSION_SECONDS if shot.extends else shot.duration,
                        price.amount if price else None, price.unit if price else None, step.key, shot.extends,
                        shot.takes, shot.pick, generate))
    for name, impl in project.providers.items():
        running = [r.shot for r in rows if r.provider == name and r.status not in (CACHED, REMOTE)]
        if running and not impl.capabilities(board.shots[running[0]].model).resumable:
            problems.append(f"note: {name} answers synchronously: if this build is killed while {name} works on "
                            f"{', '.join(running)}, the request cannot be resumed and is sent (and may be charged) "
                            "again")
        unseeded = [s.id for s in board.shots.values() if s.provider == name and s.seed is None
                    and board.film.seed is not None and not impl.capabilities(s.model).seed]
        if unseeded:
            problems.append(f"note: {name} takes no seed: [film] seed = {board.film.seed} is not sent for "
                            f"{', '.join(unseeded)} and is not part of their cache keys")
    for name, message in missing_key.items():
        if any(r.provider == name and r.status == INVALID for r in rows):
            problems.append(message)
    from storyboard.lifecycle import warnings

    problems += warnings([board.shots[s.shot] for s in steps], project.providers)
    problems += [f"warning: shot '{r.shot}': {r.reason.split('warning: ', 1)[1]}" for r in rows
                 if r.status == CACHED and "warning: " in r.reason]
    problems += [f"warning: shot '{r.shot}': {r.reason}" for r in rows if r.status == UNCERTAIN]
    limits = limits_for(project.providers, board.providers, jobs)
    # a local rate is the throughput a build got from this machine's cores: its renders queue one by one
    limits.update({name: (1, None) for name in speeds})
    upstream = {s: board.shots[s].upstream() for s in seconds}
    wall = wall_time([r.shot for r in rows if r.shot in seconds], upstream,
                     {s: board.shots[s].provider for s in seconds}, seconds, jobs, limits)
    stitch = 0.0
    if any(s in seconds for s in board.sequence):
        width, height = frame_size(board.film.resolution, board.film.aspect_ratio)
        stitch = stitch_seconds(sum(lengths[s] for s in board.sequence if s in seconds),
                                sum(lengths[s] for s in board.sequence), width * height,
                                board.edit.transition.kind == "cut", speeds)
    used = {r.provider for r in rows}
    hosts = {name: impl.key_hosts() for name, impl in project.providers.items()
             if name in used and callable(getattr(impl, "key_hosts", None))}
    running = {board.shots[s].provider for s in seconds}
    return PlanView(rows, totals, wall + stitch, problems, key_hosts=hosts,
                    speeds=[speeds[p].describe() for p in sorted(speeds) if p in running], stitch_seconds=stitch)


LARGE_PLAN = 200
"""Above this many rows `storyboard plan` prints plain text: rich's table layout costs ≈ 2 ms a row."""
SHOWN_ROWS = 50
"""Rows a large plan shows without --all: those that run first, then the cached."""


def _cells(r: Row) -> tuple[str, str, str, str, str]:
    cost = "" if r.status in (CACHED, REMOTE) else format_price(
        None if r.cost is None else Price(r.cost, r.unit or "USD"))
    return (r.shot, r.reason, f"{r.provider} / {r.model}",
            f"+{r.duration} s" if r.extends else f"{r.duration} s", cost)


def render_table(pv: PlanView, console: Any, all_rows: bool = False) -> None:
    """The plan as a table plus totals: a rich table, or plain columns for a large board.

    A large board's table (more than LARGE_PLAN rows) lists the shots that will or may run
    before the cached ones, SHOWN_ROWS of them unless `all_rows`, after a count per status.
    """
    if len(pv.rows) > LARGE_PLAN:
        _render_plain(pv, console, all_rows)
    else:
        _render_rich(pv, console)
    _render_totals(pv, console)


def _render_rich(pv: PlanView, console: Any) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("shot", "status", "reason", "provider / model", "dur", "est. cost"):
        table.add_column(col, justify="right" if col in ("dur", "est. cost") else "left",
                         overflow="fold")
    styles = {CACHED: "green", REMOTE: "cyan", INVALID: "red"}
    for r in pv.rows:
        shot, reason, model, dur, cost = _cells(r)
        table.add_row(shot, f"[{styles.get(r.status, 'yellow')}]{r.status}[/]", reason, model, dur, cost)
    console.print(table)


def _render_plain(pv: PlanView, console: Any, all_rows: bool) -> None:
    """Aligned plain columns, written straight to the console's file: no markup, no layout pass."""
    counts: dict[str, int] = {}
    for r in pv.rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    rows = [r for r in pv.rows if r.status not in (CACHED, REMOTE)] + \
           [r for r in pv.rows if r.status in (CACHED, REMOTE)]
    shown = rows if all_rows else rows[:SHOWN_ROWS]
    cells = [(shot, r.status, reason, model, dur, cost)
             for r in shown for shot, reason, model, dur, cost in [_cells(r)]]
    header = ("shot", "status", "reason", "provider / model", "dur", "est. cost")
    widths = [max([len(header[i])] + [len(c[i]) for c in cells]) for i in range(6)]

    def line(c: tuple[str, ...]) -> str:
        return "  ".join([*(c[i].ljust(widths[i]) for i in range(4)), c[4].rjust(widths[4]),
                          c[5].rjust(widths[5])]).rstrip()

    out = [f"{len(pv.rows)} shots: " + ", ".join(f"{n} {status}" for status, n in counts.items()), line(header)]
    out += [line(c) for c in cells]
    if len(shown) < len(rows):
        out.append(f"... {len(rows) - len(shown)} more row(s) (the rest in the same order); "
                   "`storyboard plan --all` prints every row, `--json` all of them for machines")
    console.file.write("\n".join(out) + "\n")


def _render_totals(pv: PlanView, console: Any) -> None:
    lines = _totals(pv)
    if _plain_output(console):  # a pipe or a log: what rich would write, without importing it
        ready = [text for text, markup in lines if _unchanged_by_rich(text, console.width)]
        if len(ready) == len(lines):
            console.file.write("".join(text + "\n" for text in ready))
            return
    for text, markup in lines:
        console.print(text, markup=markup)


def _totals(pv: PlanView) -> list[tuple[str, bool]]:
    """The lines under the table, each with whether it holds rich markup."""
    cost = ", ".join(f"{p}: " + " + ".join(format_price(Price(v, u)) for u, v in units.items())
                     for p, units in pv.totals.by_provider.items()) or "nothing to pay"
    fetched = f", {pv.remote_hits} from the remote" if pv.remote_hits else ""
    maybe = f", {pv.may_rerun} may rerun" if pv.may_rerun else ""
    counting = f", counting the {pv.may_rerun} that may rerun" if pv.may_rerun else ""
    more = f" ({pv.candidates_to_generate} candidates)" if pv.candidates_to_generate > pv.to_generate else ""
    lines = [(f"{pv.cached} cached{fetched}, {pv.to_generate} to generate{more}{maybe}; estimated cost {cost}"
              + (counting if pv.totals.by_unit else "")
              + (f"; {len(pv.totals.unpriced)} shot(s) without a price" if pv.totals.unpriced else ""), True)]
    if pv.to_generate or pv.may_rerun:
        stitch = f" ({_duration(pv.stitch_seconds)} of it stitching the film)" if pv.stitch_seconds else ""
        speeds = "".join(f"; {speed}" for speed in pv.speeds)
        lines.append((f"estimated wall time: {_duration(pv.wall_seconds)}{stitch}{counting}, at the configured "
                      f"concurrency and rate limits{speeds}", True))
    for name, hosts in pv.key_hosts.items():
        lines.append((f"{name}: key sent to {', '.join(hosts)}", False))
    for problem in pv.problems:
        if problem.startswith("warning:"):
            lines.append((f"[yellow]warning:[/]{problem.removeprefix('warning:')}", True))
        else:
            lines.append((problem if problem.startswith("note:") else f"[red]problem:[/] {problem}", True))
    return lines


class PlainConsole:
    """The console `storyboard plan` hands render_table: rich's Console is made (and rich imported,
    ≈ 0.04 s) only when something needs it; a large plan written to a pipe never does."""

    def __init__(self, file: Any, width: int | None) -> None:
        self.file, self.width, self._rich = file, width, None

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(file=self.file, highlight=False, width=self.width)
        self._rich.print(*args, **kwargs)


def _plain_output(console: Any) -> bool:
    """Whether the console writes to a pipe or a file (no colours, no terminal width)."""
    isatty = getattr(console.file, "isatty", None)
    return isinstance(console.width, int) and not (isatty is not None and isatty())


def _unchanged_by_rich(text: str, width: int) -> bool:
    """Whether rich would print `text` as it is: no markup, no :emoji: code, no control or wide
    character, and short enough not to be wrapped."""
    return (len(text) <= width and text.isascii() and text.isprintable() and "[" not in text
            and _EMOJI_CODE.search(text) is None)


_EMOJI_CODE = re.compile(r":\S*?:")


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"
