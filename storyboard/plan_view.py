"""What `storyboard plan` shows: a row per shot in run order, cost and time totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from storyboard.errors import MissingKeyError
from storyboard.estimate import Totals, format_price, limits_for, pseudo_job, typical_seconds, wall_time
from storyboard.job import Price
from storyboard.plan import CACHED, REMOTE, UNCERTAIN, Step

INVALID = "invalid"


@dataclass
class Row:
    shot: str
    status: str
    reason: str
    provider: str
    model: str
    duration: int
    cost: float | None
    unit: str | None
    key: str | None


@dataclass
class PlanView:
    rows: list[Row]
    totals: Totals
    wall_seconds: float
    problems: list[str]
    key_hosts: dict[str, list[str]] = field(default_factory=dict)
    """Per hosted provider used, the hosts its API key is sent to."""

    @property
    def to_generate(self) -> int:
        return sum(1 for r in self.rows if r.status not in (CACHED, REMOTE))

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
            "cost": {unit: round(v, 4) for unit, v in self.totals.by_unit.items()},
            "cost_by_provider": {p: {u: round(v, 4) for u, v in units.items()}
                                 for p, units in self.totals.by_provider.items()},
            "unpriced": self.totals.unpriced,
            "wall_seconds": round(self.wall_seconds, 1),
            "problems": self.problems,
            "key_hosts": self.key_hosts,
        }


def view(project: Any, steps: list[Step], jobs: int = 4) -> PlanView:
    """Price every shot that will run and simulate the build's wall time."""
    board = project.board
    totals = Totals()
    rows, problems = [], []
    missing_key: dict[str, str] = {}
    for name, impl in project.providers.items():
        check = getattr(impl, "check_key", None)
        if check is None:
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
        if status not in (CACHED, REMOTE):
            job = step.job or pseudo_job(shot)
            price = impl.price(job)
            totals.add(step.shot, shot.provider, price)
            seconds[step.shot] = typical_seconds(impl, job)
            if shot.provider in missing_key:
                status, reason = INVALID, f"{reason}; no API key"
        rows.append(Row(step.shot, status, reason, shot.provider, shot.model, shot.duration,
                        price.amount if price else None, price.unit if price else None, step.key))
    for name, impl in project.providers.items():
        running = [r.shot for r in rows if r.provider == name and r.status not in (CACHED, REMOTE)]
        if running and not impl.capabilities(board.shots[running[0]].model).resumable:
            problems.append(f"note: {name} answers synchronously: if this build is killed while {name} works on "
                            f"{', '.join(running)}, the request cannot be resumed and is sent (and may be charged) "
                            "again")
    for name, message in missing_key.items():
        if any(r.provider == name and r.status == INVALID for r in rows):
            problems.append(message)
    from storyboard.lifecycle import warnings

    problems += warnings([board.shots[s.shot] for s in steps], project.providers)
    problems += [f"warning: shot '{r.shot}': {r.reason.split('warning: ', 1)[1]}" for r in rows
                 if r.status == CACHED and "warning: " in r.reason]
    problems += [f"warning: shot '{r.shot}': {r.reason}" for r in rows if r.status == UNCERTAIN]
    limits = limits_for(project.providers, board.providers, jobs)
    upstream = {s: board.shots[s].upstream() for s in seconds}
    wall = wall_time([r.shot for r in rows if r.shot in seconds], upstream,
                     {s: board.shots[s].provider for s in seconds}, seconds, jobs, limits)
    used = {r.provider for r in rows}
    hosts = {name: impl.key_hosts() for name, impl in project.providers.items()
             if name in used and callable(getattr(impl, "key_hosts", None))}
    return PlanView(rows, totals, wall, problems, hosts)


def render_table(pv: PlanView, console: Any) -> None:
    """The plan as a rich table plus totals."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("shot", "status", "reason", "provider / model", "dur", "est. cost"):
        table.add_column(col, justify="right" if col in ("dur", "est. cost") else "left",
                         overflow="fold")
    styles = {CACHED: "green", REMOTE: "cyan", INVALID: "red"}
    for r in pv.rows:
        cost = "" if r.status in (CACHED, REMOTE) else format_price(
            None if r.cost is None else Price(r.cost, r.unit or "USD"))
        table.add_row(r.shot, f"[{styles.get(r.status, 'yellow')}]{r.status}[/]", r.reason,
                      f"{r.provider} / {r.model}", f"{r.duration}s", cost)
    console.print(table)
    cost = ", ".join(f"{p}: " + " + ".join(format_price(Price(v, u)) for u, v in units.items())
                     for p, units in pv.totals.by_provider.items()) or "nothing to pay"
    fetched = f", {pv.remote_hits} from the remote" if pv.remote_hits else ""
    console.print(f"{pv.cached} cached{fetched}, {pv.to_generate} to generate; estimated cost {cost}"
                  + (f"; {len(pv.totals.unpriced)} shot(s) without a price" if pv.totals.unpriced else ""))
    if pv.to_generate:
        console.print(f"estimated wall time: {_duration(pv.wall_seconds)} at the configured concurrency and rate limits")
    for name, hosts in pv.key_hosts.items():
        console.print(f"{name}: key sent to {', '.join(hosts)}", markup=False)
    for problem in pv.problems:
        if problem.startswith("warning:"):
            console.print(f"[yellow]warning:[/]{problem.removeprefix('warning:')}", markup=True)
        else:
            console.print(problem if problem.startswith("note:") else f"[red]problem:[/] {problem}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"
