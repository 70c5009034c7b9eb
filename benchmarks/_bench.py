"""Shared by the benchmark scripts: timing a child process (wall and CPU), load and summaries."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Wall-clock and CPU seconds (user + sys of the child processes) of repeated runs."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def row(self) -> str:
        """``median wall (min–max), median CPU``, for a results line."""
        return (f"wall median {statistics.median(self.wall):.3f} s "
                f"(min {min(self.wall):.3f}, max {max(self.wall):.3f}, n={len(self.wall)}), "
                f"cpu median {statistics.median(self.cpu):.3f} s")

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def children_cpu() -> float:
    """CPU seconds used so far by the child processes this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    """CPU seconds used so far by this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
              runs: int = 1, before: Callable[[], None] | None = None,
              check_output: Callable[[str], bool] | None = None) -> Timings:
    """Run ``cmd`` ``runs`` times (``before`` each), timing each; output is captured, not shown."""
    timings = Timings()
    for _ in range(runs):
        if before:
            before()
        cpu, start = children_cpu(), time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
        timings.wall.append(time.perf_counter() - start)
        timings.cpu.append(children_cpu() - cpu)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        if check_output and not check_output(proc.stdout + proc.stderr):
            raise SystemExit(f"{' '.join(cmd)}: unexpected output:\n{proc.stdout}\n{proc.stderr}")
    return timings


def load() -> str:
    """The 1, 5 and 15 minute load averages and the core count, for the results line."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def compile_package(package: str | None = None) -> None:
    """Write storyboard's bytecode first, as installing a package does.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in some sandboxes) an editable install never keeps
    its bytecode, so every timed run would compile the modules it imports again (0.1-0.3 s of
    CPU for the CLI's), which no installed ``storyboard`` pays.
    """
    import sys

    import storyboard

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package or os.path.dirname(storyboard.__file__))],
                   env=env, check=True, stdout=subprocess.DEVNULL)
