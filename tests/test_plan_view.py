"""plan's table and totals, the budget, missing keys and the wall-time estimate."""

from __future__ import annotations

import json

import pytest

from storyboard.build import build, open_project, plan_project
from storyboard.estimate import wall_time
from storyboard.plan_view import view
from tests.test_cli_build import storyboard

BOARD = """
[film]
provider = "fake"
duration = 4

[[shot]]
id = "a"
prompt = "one"

[[shot]]
id = "b"
continues = "a"
prompt = "two"
duration = 8

[[shot]]
id = "c"
prompt = "three"
"""


def test_plan_prices_every_shot_that_will_run(write_board, fake_provider):
    path = write_board(BOARD)
    project = open_project(path)
    pv = view(project, plan_project(project)[0])
    assert [(r.shot, r.status, r.cost) for r in pv.rows] == [
        ("a", "to run", 2.0), ("b", "may rerun", 4.0), ("c", "to run", 2.0)]
    assert pv.totals.usd() == 8.0 and (pv.to_generate, pv.may_rerun) == (2, 1)
    build(project)
    again = open_project(path)
    pv = view(again, plan_project(again)[0])
    assert pv.cached == 3 and pv.totals.usd() == 0.0


def test_a_provider_is_asked_for_its_key_only_when_a_shot_of_it_will_be_generated(write_board, fake_provider,
                                                                                  monkeypatch):
    """Looking for Google's credentials imports google-auth and may ask the metadata server: a plan of
    cached shots does not need the key, and does not look for it."""
    path = write_board(BOARD)
    build(open_project(path))
    asked = []
    project = open_project(path)
    monkeypatch.setattr(project.providers["fake"], "check_key", lambda: asked.append("fake"), raising=False)
    pv = view(project, plan_project(project)[0])
    assert pv.cached == 3 and asked == []
    path.write_text(BOARD.replace('prompt = "three"', 'prompt = "four"'))
    project = open_project(path)
    monkeypatch.setattr(project.providers["fake"], "check_key", lambda: asked.append("fake"), raising=False)
    pv = view(project, plan_project(project)[0])
    assert pv.to_generate == 1 and asked == ["fake"]


def test_plan_json_and_budget_through_the_cli(tmp_path, plugin_env):
    board = tmp_path / "storyboard.toml"
    board.write_text(BOARD)
    result = storyboard("plan", str(board), "--json", env=plugin_env)
    data = json.loads(result.stdout)
    assert data["to_generate"] == 2 and data["may_rerun"] == 1 and data["cost"] == {"USD": 8.0}
    assert data["cost_by_provider"] == {"fake": {"USD": 8.0}}
    refused = storyboard("build", str(board), "--budget", "5", env=plugin_env)
    assert refused.returncode == 2
    assert "exceeds --budget $5.00" in refused.stderr and "nothing was run" in refused.stderr
    assert not (tmp_path / ".storyboard" / "actions").exists()


def test_build_json_events(tmp_path, plugin_env):
    board = tmp_path / "storyboard.toml"
    board.write_text(BOARD)
    result = storyboard("build", str(board), "--json", "--budget", "10", env=plugin_env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    done = {e["shot"] for e in events if e["event"] == "shot" and e["state"] == "done"}
    assert done == {"a", "b", "c"}
    assert events[-1]["event"] == "summary" and events[-1]["rendered"] == 3


def test_missing_key_is_an_input_error_before_anything_runs(tmp_path, monkeypatch):
    board = tmp_path / "storyboard.toml"
    board.write_text(BOARD.replace('provider = "fake"', 'provider = "gemini"') + "\n[providers.gemini]\nallow_retired = true\n")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    result = storyboard("build", str(board), env=env)
    assert result.returncode == 2
    assert "set GEMINI_API_KEY" in result.stderr
    plan = storyboard("plan", str(board), env=env)
    assert plan.returncode == 0 and "invalid" in plan.stdout


@pytest.mark.parametrize("case, expected", [
    ("chain", 30.0),        # a -> b -> c, 10 s each
    ("fan", 50.0),          # 10 independent shots, concurrency 2
    ("rpm", 65.0),          # 20 shots of 5 s, 10 per minute
])
def test_wall_time(case, expected):
    if case == "chain":
        shots, up, secs, limits = ["a", "b", "c"], {"b": ["a"], "c": ["b"]}, 10, (4, None)
    elif case == "fan":
        shots, up, secs, limits = [f"s{i}" for i in range(10)], {}, 10, (2, None)
    else:
        shots, up, secs, limits = [f"s{i}" for i in range(20)], {}, 5, (10, 10)
    got = wall_time(shots, up, {s: "p" for s in shots}, {s: secs for s in shots}, 10, {"p": limits})
    assert got == expected


def test_an_unknown_resubmit_shot_is_refused_before_the_cost_question(write_board, fake_provider):
    from storyboard.build import open_project
    from storyboard.build_command import run
    from storyboard.errors import StoryboardError

    path = write_board('[film]\nprovider = "fake"\nduration = 4\n\n[[shot]]\nid = "pier"\nprompt = "a pier"\n')
    asked: list[str] = []
    with pytest.raises(StoryboardError, match=r"--resubmit: unknown shot 'peir' \(did you mean 'pier'\?\)"):
        run(open_project(path), resubmit=["peir"], yes=False, echo=lambda message, err: None,
            confirm=lambda question, err: asked.append(question) or True)
    assert asked == [] and fake_provider.calls == []
