"""`plan` agrees with `build`: its time estimate, its definite statements, its reasons, extension lengths."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime

import pytest
from PIL import Image

from storyboard.build import build, open_project, plan_project
from storyboard.errors import StoryboardFileError
from storyboard.estimate import REFERENCE_PIXELS, local_speeds
from storyboard.executor import Outcome
from storyboard.plan import CACHED, MAY_RERUN, REMOTE, RUN
from storyboard.plan_view import render_table, view
from storyboard.providers.animatic import AnimaticProvider
from tests._built import copy_built, fake_registered
from tests.fake_provider import FakeProvider

ANIMATIC = """
[film]
provider = "animatic"
duration = 4
seed = 5
audio = false

[[shot]]
id = "a"
prompt = "a boat leaves the harbour"

[[shot]]
id = "b"
continues = "a"
prompt = "the boat reaches the open sea"

[[shot]]
id = "c"
prompt = "gulls over the cliff"
"""

ON_FAKE = ANIMATIC.replace('provider = "animatic"', 'provider = "fake"\nresolution = "360p"')
"""The board on the fake provider, stitched at 360p (a quarter of 720p's cost): its film's size is not the point."""


def plan_and_build(path):
    """Plan, then build the same project: ({shot: step}, {shot: outcome}, build seconds)."""
    project = open_project(path)
    steps, _ = plan_project(project)
    started = time.monotonic()
    report = build(project)
    took = time.monotonic() - started
    return {s.shot: s for s in steps}, {s: r.outcome for s, r in report.shots.items()}, took


def assert_build_never_contradicts_plan(steps, outcomes):
    for shot, step in steps.items():
        if step.status == RUN:
            assert outcomes[shot] is Outcome.RENDERED, (shot, step.reason)
        elif step.status in (CACHED, REMOTE):
            assert outcomes[shot] is Outcome.CACHED, (shot, step.reason)
        else:
            assert step.status == MAY_RERUN and outcomes[shot] in (Outcome.RENDERED, Outcome.CACHED)


# ---- 7b: a dependant whose upstream reruns "may rerun"; the build never contradicts the plan ----


class SameEveryTake(FakeProvider):
    """A provider whose output ignores the take, as the animatic's drafts do: a new take, the same bytes."""

    def render(self, job, dest, ctx):
        return super().render(dataclasses.replace(job, take=1), dest, ctx)


def test_a_dependant_of_a_rerun_that_returns_the_same_frames_is_not_promised_a_rerun(write_board, fake_provider,
                                                                                      monkeypatch):
    import storyboard.providers as providers

    monkeypatch.setitem(providers.BUILTIN, "same", "tests.test_plan_accuracy:SameEveryTake")
    path = write_board(ON_FAKE.replace('"fake"', '"same"'))
    build(open_project(path))
    # another take of 'a': its key changes, but its clip comes out byte-identical
    path.write_text(path.read_text().replace('id = "a"\n', 'id = "a"\ntake = 2\n'))
    steps, outcomes, _ = plan_and_build(path)
    assert steps["a"].status == RUN and "take changed (1 -> 2)" in steps["a"].reason
    assert steps["b"].status == MAY_RERUN
    assert steps["b"].reason == "upstream 'a' reruns; cached if 'a' comes out as before"
    assert outcomes == {"a": Outcome.RENDERED, "b": Outcome.CACHED, "c": Outcome.CACHED}
    assert_build_never_contradicts_plan(steps, outcomes)


def write_built(tmp_path_factory, text, **images):
    """A board built once for the module, with the fake provider (tests change copies of it)."""
    folder = tmp_path_factory.mktemp("built") / "board"
    (folder / "assets").mkdir(parents=True)
    for name, colour in images.items():
        Image.new("RGB", (64, 36), colour).save(folder / "assets" / f"{name}.png")
    path = folder / "storyboard.toml"
    path.write_text(text)
    with fake_registered():
        build(open_project(path))
    return path


@pytest.fixture(scope="module")
def built_three(tmp_path_factory):
    """The three-shot board on the fake provider, planned fresh then built: (board, the fresh plan's steps)."""
    folder = tmp_path_factory.mktemp("fresh")
    (folder / "storyboard.toml").write_text(ON_FAKE)
    with fake_registered():
        fresh = {s.shot: s for s in plan_project(open_project(folder / "storyboard.toml"))[0]}
    return write_built(tmp_path_factory, ON_FAKE), fresh


def test_a_waiting_shot_names_its_own_edits_and_new_shots_say_so(built_three, fake_provider, tmp_path):
    built, first = built_three
    assert first["b"].reason == "new shot; runs after upstream 'a'"
    path = copy_built(built, tmp_path)
    path.write_text(path.read_text().replace("a boat leaves", "a ship leaves").replace("open sea", "open ocean"))
    steps = {s.shot: s for s in plan_project(open_project(path))[0]}
    assert (steps["b"].status, steps["b"].reason) == (MAY_RERUN, "prompt changed; upstream 'a' reruns")


def test_plan_statements_hold_after_the_build(built_three, fake_provider, tmp_path):
    path = copy_built(built_three[0], tmp_path)
    for edit in [('"a boat leaves the harbour"', '"a ship leaves the harbour"'),  # 'a', and 'b' after it
                 ('"the boat reaches the open sea"', '"the boat meets a storm"'),  # 'b' alone
                 ('"gulls over the cliff"', '"terns over the cliff"')]:
        path.write_text(path.read_text().replace(*edit))
        steps, outcomes, _ = plan_and_build(path)
        assert_build_never_contradicts_plan(steps, outcomes)
        assert sum(o is Outcome.RENDERED for o in outcomes.values()) >= 1


def test_two_shots_making_the_same_request_are_generated_once(write_board, fake_provider):
    path = write_board(ON_FAKE.replace("gulls over the cliff",
                                                                       "a boat leaves the harbour"))
    steps, outcomes, _ = plan_and_build(path)
    assert steps["a"].status == RUN and steps["c"].status == MAY_RERUN and steps["a"].key == steps["c"].key
    assert steps["c"].reason == "the same request as 'a': cached once 'a' is generated"
    assert outcomes["c"] is Outcome.CACHED and len(fake_provider.calls) == 2
    assert_build_never_contradicts_plan(steps, outcomes)


def test_plan_counts_what_may_rerun_apart_from_what_will(write_board, fake_provider):
    path = write_board(ON_FAKE)
    project = open_project(path)
    pv = view(project, plan_project(project)[0])
    assert (pv.to_generate, pv.may_rerun) == (2, 1)
    assert pv.as_json()["may_rerun"] == 1
    assert pv.totals.usd() == 3 * 0.5 * 4  # the budget is held against the most a build can spend


# ---- 7c: one changed reference image is the only one named ----


REFS = """
[film]
provider = "fake"
resolution = "360p"

[assets]
keeper = "assets/keeper.png"
lamp = "assets/lamp.png"
tower = "assets/tower.png"

[[shot]]
id = "portrait"
references = ["keeper", "lamp", "tower"]
prompt = "the keeper in the lamp room"
"""


def _replan(path):
    project = open_project(path)
    return {s.shot: s for s in plan_project(project)[0]}["portrait"]


@pytest.fixture(scope="module")
def built_refs(tmp_path_factory):
    """The portrait with three references, built once for the module (an unused owl.png lies beside them)."""
    return write_built(tmp_path_factory, REFS, keeper=(200, 180, 40), lamp=(250, 250, 200), tower=(90, 90, 90),
                       owl=(1, 2, 3))


def test_changing_one_reference_names_only_that_image(built_refs, fake_provider, tmp_path):
    path = copy_built(built_refs, tmp_path)
    Image.new("RGB", (64, 36), (10, 20, 30)).save(path.parent / "assets" / "keeper.png")
    step = _replan(path)
    assert (step.status, step.reason) == (RUN, "reference 'keeper' changed")


def test_reference_edits_are_named_precisely(built_refs, fake_provider, tmp_path):
    path = copy_built(built_refs, tmp_path)
    text = path.read_text()
    path.write_text(text.replace('["keeper", "lamp", "tower"]', '["tower", "keeper", "lamp"]'))
    assert _replan(path).reason == "reference images reordered"
    path.write_text(text.replace('["keeper", "lamp", "tower"]', '["keeper", "tower"]'))
    assert _replan(path).reason == "1 reference image removed"
    path.write_text(text.replace('["keeper", "lamp", "tower"]', '["keeper", "assets/owl.png", "tower"]'))
    assert _replan(path).reason == "reference 'assets/owl.png' changed"


# ---- 7a: the wall-time estimate of a local provider follows its measured speed ----


def _locked(provider, created, seconds, clip, duration=4, resolution="720p", extends=None):
    return {"provider": provider, "created": created, "seconds": seconds, "clip": clip,
            "components": {"duration": duration, "resolution": resolution, "aspect_ratio": "16:9",
                           "extends": extends}}


def test_local_speed_is_the_throughput_the_lock_recorded():
    locked = {
        # 'a' and 'b' rendered side by side for 4 s: 4 + 8 * 2.25 (1080p) = 22 s of 720p output
        "a": _locked("animatic", "2026-12-01T10:00:00Z", 4.0, "c1"),
        "b": _locked("animatic", "2026-12-01T10:00:00Z", 4.0, "c2", duration=8, resolution="1080p"),
        # then 'x' extended 'a' for 2 s: 4 + 7 = 11 s of output
        "x": _locked("animatic", "2026-12-01T10:00:04Z", 2.0, "c3", duration=8, extends="c1"),
        # a day later, 'c' alone
        "c": _locked("animatic", "2026-12-02T10:00:00Z", 1.0, "c4"),
        "r": _locked("gemini", "2026-12-01T10:00:00Z", 120.0, "c5"),
    }
    speeds = local_speeds({"animatic": AnimaticProvider(), "gemini": object()}, locked)
    assert set(speeds) == {"animatic"}  # a remote provider keeps its latency model
    work = 4 + 8 * 1920 * 1080 / REFERENCE_PIXELS + 11 + 4
    assert speeds["animatic"].rate == pytest.approx((4 + 2 + 1) / work) and speeds["animatic"].renders == 4
    fresh = local_speeds({"animatic": AnimaticProvider()}, {})["animatic"]
    assert fresh.renders == 0 and fresh.rate == AnimaticProvider.render_rate


def test_animatic_plan_estimates_the_build_it_precedes(write_board):
    path = write_board(ANIMATIC)
    project = open_project(path)
    fresh = view(project, plan_project(project)[0])
    assert "nominal speed" in fresh.speeds[0] and fresh.stitch_seconds > 0
    _, _, first_took = plan_and_build(path)
    # a fresh board is estimated at the animatic's nominal speed: the order of the real build
    assert first_took / 10 < fresh.wall_seconds < first_took * 10, (fresh.wall_seconds, first_took)

    path.write_text(path.read_text().replace("boat", "ship").replace("gulls", "terns"))
    project = open_project(path)
    pv = view(project, plan_project(project)[0])
    assert pv.to_generate == 2 and pv.may_rerun == 1 and "3 renders in the lock" in pv.speeds[0]
    measured = local_speeds(project.providers, project.lock.shots)["animatic"]
    _, outcomes, took = plan_and_build(path)
    assert list(outcomes.values()).count(Outcome.RENDERED) == 3
    # The estimate is the first build's measured speed times this build's work. A shared machine runs
    # each build at its own speed (a loaded one 3 to 5 times slower), so the estimate is scaled by the
    # speed this build's own renders recorded in the lock: what the plan would have said, had it known
    # the machine as the build found it. What is left is the model (the work of each clip, the renders'
    # order, the stitch), held to the build's wall time within a factor of 3 (a 90 s guess per shot was
    # 30 to 60 times off).
    built = open_project(path)
    now = local_speeds(built.providers, built.lock.shots)["animatic"]
    assert now.renders == 3 and measured.renders == 3
    at_this_speed = pv.wall_seconds * now.rate / measured.rate
    assert took / 3 < at_this_speed < took * 3, (pv.wall_seconds, measured.rate, now.rate, took)
    # its render part alone, against the wall time the lock says the renders covered (overlaps once): the
    # stitch cannot hide a render estimate off by a large factor, and the machine's load cancels out
    rendering, end = 0.0, float("-inf")
    for start, seconds in sorted((datetime.fromisoformat(e["created"]).timestamp(), e["seconds"])
                                 for e in built.lock.shots.values()):
        rendering += max(0.0, start + seconds - max(start, end))
        end = max(end, start + seconds)
    renders_at_this_speed = (pv.wall_seconds - pv.stitch_seconds) * now.rate / measured.rate
    assert rendering / 2 < renders_at_this_speed < rendering * 2, (renders_at_this_speed, rendering)


# ---- 10: an extension's length is Veo's rule, +7 s ----


EXTENDS = """
[film]
provider = "fake"
resolution = "360p"
duration = 4

[[shot]]
id = "a"
prompt = "the sea"

[[shot]]
id = "more"
extends = "a"
prompt = "the sea, later"
{duration}
"""


def test_an_extension_needs_no_duration_and_plan_shows_plus_7(write_board, fake_provider, capsys):
    from rich.console import Console

    path = write_board(EXTENDS.format(duration=""))  # [film] duration = 4 is not forced on the extension
    project = open_project(path)
    assert project.board.shots["more"].duration == 7
    pv = view(project, plan_project(project)[0])
    row = {r.shot: r for r in pv.rows}["more"]
    assert (row.duration, row.extends) == (7, "a")
    render_table(pv, Console(width=200, highlight=False))
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("more"))
    assert "+7 s" in line
    report = build(project)
    assert report.count(Outcome.RENDERED) == 2
    assert report.film.duration == pytest.approx(4 + 7, abs=0.05)  # 'a' extended by 7 s replaces 'a'


def test_an_extension_may_say_7_or_the_8_it_needed_before_with_the_same_key(write_board, fake_provider):
    path = write_board(EXTENDS.format(duration=""))
    build(open_project(path))
    for said in ("duration = 7", "duration = 8"):
        path.write_text(EXTENDS.format(duration=said))
        step = {s.shot: s for s in plan_project(open_project(path))[0]}["more"]
        assert step.status == CACHED, said
        # the job keeps the 8 every extension said before: keys made by earlier versions still hit
        assert step.job.duration == 8


@pytest.mark.parametrize("duration", [4, 6, 9])
def test_any_other_extension_length_is_refused_with_the_rule(write_board, fake_provider, duration):
    with pytest.raises(StoryboardFileError) as info:
        open_project(write_board(EXTENDS.format(duration=f"duration = {duration}")))
    message = info.value.message
    assert "shot 'more'" in message and "field 'duration'" in message
    assert "an extension adds 7 s to the source clip (Veo 3.1 rule)" in message
    assert "remove 'duration'" in message and "[film]" not in message


def test_extension_lengths_through_the_cli(tmp_path, plugin_env):
    from tests.test_cli_build import storyboard

    board = tmp_path / "storyboard.toml"
    board.write_text(EXTENDS.format(duration=""))
    result = storyboard("plan", str(board), "--json", env=plugin_env)
    assert result.returncode == 0, result.stderr
    rows = {r["shot"]: r for r in json.loads(result.stdout)["shots"]}
    assert rows["more"]["duration"] == 7 and rows["more"]["extends"] == "a" and rows["a"]["duration"] == 4
    board.write_text(EXTENDS.format(duration="duration = 6"))
    refused = storyboard("validate", str(board), env=plugin_env)
    assert refused.returncode == 2 and "adds 7 s to the source clip" in refused.stderr
    assert "Traceback" not in refused.stderr
