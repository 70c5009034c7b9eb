"""The lines under plan's table, written straight to a pipe, are exactly what rich would print."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console

from storyboard.estimate import Price, Totals
from storyboard.plan_view import PlainConsole, PlanView, Row, render_table


def plan_view(rows: int, problems: list[str], hosts: dict[str, list[str]], may_rerun: bool) -> PlanView:
    totals = Totals()
    for i in range(rows):
        totals.add(f"s{i}", "veo", Price(0.4, "USD") if i % 3 else None)
    made = [Row(f"s{i}", "may rerun" if may_rerun and i == 1 else "to run" if i % 2 else "cached",
                f"reason {i}", "veo", "veo-3.1", 8, 0.4, "USD", None) for i in range(rows)]
    return PlanView(made, totals, 1234.5, problems, key_hosts=hosts, speeds=["veo: 90 s a shot (nominal)"],
                    stitch_seconds=12.0)


CASES = [
    ([], {}, False),
    (["note: 2 shots share a request"], {"veo": ["generativelanguage.googleapis.com"]}, True),
    (["warning: model veo-2 retires in 10 days"], {}, False),  # markup: rich writes it
    (["VEO_KEY is not set"], {}, False),  # a problem: red markup
    (["note: a [bracket] in the text"], {}, False),  # rich would read [bracket] as markup
    (["note: :smile: is an emoji code"], {}, False),
    (["note: " + "long " * 60], {}, False),  # wider than 200 columns: rich wraps it
    (["note: café"], {}, False),
]


@pytest.mark.parametrize("rows", [3, 250])
@pytest.mark.parametrize(("problems", "hosts", "may_rerun"), CASES)
def test_plain_totals_are_what_rich_prints(rows, problems, hosts, may_rerun):
    pv = plan_view(rows, problems, hosts, may_rerun)
    plain, rich = io.StringIO(), io.StringIO()
    render_table(pv, PlainConsole(plain, 200))
    render_table(pv, Console(file=rich, width=200, highlight=False))
    assert plain.getvalue() == rich.getvalue()
    assert "estimated cost veo: $" in plain.getvalue()


def test_a_large_plan_to_a_pipe_never_imports_rich():
    code = """
import io, sys
from storyboard.estimate import Totals
from storyboard.plan_view import PlainConsole, PlanView, Row, render_table
rows = [Row(f"s{i}", "cached", "up to date", "veo", "veo-3.1", 8, None, None, "k") for i in range(300)]
out = io.StringIO()
render_table(PlanView(rows, Totals(), 0.0, []), PlainConsole(out, 200))
assert out.getvalue().startswith("300 shots: 300 cached") and "300 cached, 0 to generate" in out.getvalue()
print("rich" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
