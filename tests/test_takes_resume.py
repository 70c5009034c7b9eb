"""Takes and the journal: a killed batch request is resumed whole, after `takes` changed or `--force`.

Money is sacred: every video a request paid for lands in the cache and the lock, and the next build
resumes the journaled operation rather than sending another create (the Vertex fake counts them).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from storyboard.build import build, open_project, plan_project
from storyboard.errors import StoryboardError
from storyboard.executor import Outcome
from storyboard.takes import force_batches, list_candidates

BOARD = """
[film]
provider = "vertex"
model = "veo-3.1-generate-001"
duration = 4
audio = false

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"
takes = {takes}

[providers.vertex]
poll_interval = 0.01
"""


@pytest.fixture
def vertex(google_fake, monkeypatch):
    monkeypatch.setenv("STORYBOARD_VERTEX_BASE_URL", google_fake.url)
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", google_fake.token)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", google_fake.project)
    return google_fake


def write(path: Path, takes: int) -> Path:
    path.write_text(BOARD.format(takes=takes))
    return path


def lock_of(board: Path) -> dict:
    return json.loads(board.with_name("storyboard.lock").read_text())


def journals(board: Path) -> list[dict]:
    folder = board.parent / ".storyboard" / "journal"
    return [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []


def killed_build(board: Path, fake, force: list[str] | None = None) -> None:
    """A build stopped (as by Ctrl-C) while its create is answered and journaled and the poll still runs."""
    fake.pending_polls = 10**9
    project = open_project(board)
    if force:
        force_batches(project, force)
    cancel = threading.Event()
    thread = threading.Thread(target=build, args=(project,), kwargs={"cancel": cancel})
    thread.start()
    deadline = time.monotonic() + 20
    while not any(j.get("operation") for j in journals(board)):
        assert time.monotonic() < deadline and thread.is_alive(), "the create was never journaled"
        time.sleep(0.01)
    cancel.set()
    thread.join(20)
    assert not thread.is_alive()
    fake.pending_polls = 0
    fake.finish_pending()


def test_a_killed_batch_resumed_after_takes_were_lowered_lands_every_paid_video(write_board, vertex):
    path = write(write_board(""), takes=3)
    killed_build(path, vertex)
    assert vertex.count("submit") == 1 and vertex.bodies("submit")[0]["parameters"]["sampleCount"] == 3
    [sent] = journals(path)
    assert sent["candidates"] == [1, 2, 3] and sent["provider"] == "vertex"

    write(path, takes=1)
    steps, _ = plan_project(open_project(path))
    assert "resumes the vertex request" in steps[0].reason and "3 videos, already paid" in steps[0].reason
    report = build(open_project(path))
    assert report.count(Outcome.RENDERED) == 1, report.failed
    assert vertex.count("submit") == 1 and not journals(path)  # resumed, not sent again
    entry = lock_of(path)["shots"]["a"]
    assert len(entry["candidates"]) == 3  # the two past `takes` are paid takes: recorded, so gc keeps them
    assert sorted(r["number"] for r in entry["candidates"].values()) == [1, 2, 3]
    assert len({r["clip"] for r in entry["candidates"].values()}) == 3

    write(path, takes=3)
    report = build(open_project(path))
    assert vertex.count("submit") == 1 and report.shots["a"].outcome is Outcome.CACHED
    found = list_candidates(open_project(path), "a")
    assert set(entry["candidates"]) == {c.key for c in found} and all(c.path.is_file() for c in found)


def test_a_forced_batch_killed_in_flight_is_resumed_by_the_next_plain_build(write_board, vertex):
    path = write(write_board(""), takes=1)
    assert build(open_project(path)).film is not None
    old = lock_of(path)["shots"]["a"]
    killed_build(path, vertex, force=["a"])
    assert vertex.count("submit") == 2
    [sent] = journals(path)

    steps, _ = plan_project(open_project(path))  # no --force: the journaled batch is still the shot's
    assert steps[0].status == "to run" and "resumes the vertex request" in steps[0].reason
    report = build(open_project(path))
    assert report.count(Outcome.RENDERED) == 1, report.failed
    assert vertex.count("submit") == 2 and not journals(path)  # the forced batch was paid for once
    entry = lock_of(path)["shots"]["a"]
    assert entry["batch"] == 1 and old["key"] in entry["candidates"] and len(entry["candidates"]) == 2
    assert entry["key"] != old["key"]  # the fake answers the same bytes; the key tells the batches apart
    new = entry["candidates"][entry["key"]]
    assert new["batch"] == 1 and open_project(path).cache.object_path(new["clip"]).is_file()
    assert sent["operation"] in json.dumps(open_project(path).cache.get_action(entry["key"]))

    report = build(open_project(path))
    assert vertex.count("submit") == 2 and report.shots["a"].outcome is Outcome.CACHED


def test_the_budget_prompt_and_the_summary_count_candidates(write_board, fake_provider, capsys, monkeypatch):
    from storyboard.build import consent
    from storyboard.plan_view import view
    from tests.test_cli import run_main
    from tests.test_takes import write as write_takes

    path = write_takes(write_board(""), takes=3)
    project = open_project(path)
    pv = view(project, plan_project(project)[0])
    question = consent(pv, budget=None, yes=False, terminal=True)
    # a's 3 takes; b waits on a's picked clip
    assert question.startswith("Generate 1 shot(s) (3 candidates) (and up to 1 that may rerun) for an estimated")
    with pytest.raises(StoryboardError, match=r"of 1 shot\(s\) \(3 candidates\) exceeds --budget"):
        consent(pv, budget=0.01, yes=False, terminal=False)
    code, out, err = run_main(["build", str(path), "--yes", "--quiet"], capsys, monkeypatch)
    assert code == 0, err
    assert "summary: 2 rendered (4 candidates)" in out and len(fake_provider.calls) == 4
