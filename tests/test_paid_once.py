"""Money: a paid create is never sent twice by accident, and a paid clip is never thrown away.

- #12.4: a create that may have reached the service (its answer lost) is not retried; the shot is
  journaled `uncertain`, later builds refuse it until `--resubmit SHOT`.
- #12.5: a decodable clip of another length than requested is kept, used and reported.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from storyboard.errors import ProviderError
from storyboard.job import RenderJob
from storyboard.providers import ProviderSettings
from storyboard.providers._http import UncertainSubmit, request_with_retries
from storyboard.providers.gemini import GeminiProvider
from tests._cli import clean_env
from tests._cli import storyboard as run_storyboard
from tests.fake_provider import FakeProvider
from tests.fakes import render_context
from tests.fakes.google_server import FakeGoogle, google_fake, google_server  # noqa: F401
from tests.fakes.hostile import Loopback, reply_json

PROMPT = "waves against the pier"
ONE = f"""
[film]
output = "out/film.mp4"
provider = "gemini"
duration = 4

[providers.gemini]
allow_retired = true
poll_interval = 0.01

[[shot]]
id = "pier"
prompt = "{PROMPT}"
"""


def storyboard(*args: str, fake: FakeGoogle) -> subprocess.CompletedProcess[str]:
    env = clean_env(GEMINI_API_KEY=fake.api_key, STORYBOARD_GEMINI_BASE_URL=fake.url)
    return run_storyboard(*args, env=env, yes=True, timeout=180)


# ---- #12.4 end to end: two builds, one submission -------------------------------------------


def test_a_reset_after_the_create_arrived_is_submitted_once_across_builds(tmp_path, google_fake):  # noqa: F811
    board = tmp_path / "storyboard.toml"
    board.write_text(ONE)
    google_fake.reset_connection("submit")  # the server reads the request, then the connection drops

    first = storyboard("build", str(board), fake=google_fake)
    assert first.returncode == 1
    assert "may have started and been charged" in first.stderr and "https://aistudio.google.com/usage" in first.stderr
    assert "storyboard build --resubmit pier" in first.stderr
    assert google_fake.count("submit") == 1  # not retried

    plan = storyboard("plan", str(board), fake=google_fake)
    assert plan.returncode == 0 and "uncertain" in plan.stdout and "--resubmit pier" in plan.stdout

    second = storyboard("build", str(board), fake=google_fake)
    assert second.returncode == 1
    assert "lost its answer and may have been charged; it is not sent again on its own" in second.stderr
    assert google_fake.count("submit") == 1  # exactly one submission across two builds

    third = storyboard("build", str(board), "--resubmit", "pier", fake=google_fake)
    assert third.returncode == 0, third.stderr
    assert google_fake.count("submit") == 2 and google_fake.submissions == {PROMPT: 1}
    assert (tmp_path / "out" / "film.mp4").is_file()
    fourth = storyboard("build", str(board), fake=google_fake)
    assert fourth.returncode == 0 and google_fake.count("submit") == 2  # cached: nothing uncertain left


def test_resubmit_names_a_real_shot(tmp_path, google_fake):  # noqa: F811
    board = tmp_path / "storyboard.toml"
    board.write_text(ONE)
    result = storyboard("build", str(board), "--resubmit", "peir", fake=google_fake)
    assert result.returncode != 0 and "--resubmit: unknown shot 'peir'" in result.stderr
    assert "Traceback" not in result.stderr and google_fake.count("submit") == 0


# ---- #12.4 at the provider: what counts as "provably never arrived" ---------------------------


def gemini(url: str, **settings) -> GeminiProvider:
    return GeminiProvider(ProviderSettings(base_url=url, poll_interval=0.01, allow_retired=True, **settings),
                          env={"GEMINI_API_KEY": "k"}, rng=random.Random(0))


def job() -> RenderJob:
    return RenderJob(provider="gemini", model="veo-3.1-generate-preview", prompt=PROMPT, duration=4)


def hang_up(handler, seen) -> None:
    """Read the whole request, then drop the connection without a word (RST)."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    handler.close_connection = True
    handler.connection.close()


@pytest.mark.parametrize("how", ["reset", "read timeout", "500", "answer without an id"])
def test_an_ambiguous_create_is_sent_once_and_journaled_uncertain(tmp_path, how):
    def answer(handler, seen):
        if how == "reset":
            hang_up(handler, seen)
        elif how == "read timeout":
            time.sleep(1.0)
            reply_json(handler, {"name": "models/x/operations/late"})
        elif how == "500":
            reply_json(handler, {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}, 500)
        else:
            reply_json(handler, {"done": False})

    with Loopback(answer) as api:
        provider = gemini(api.url, timeout=0.3)
        ctx = render_context(tmp_path, shot_id="pier")
        try:
            with pytest.raises(ProviderError) as info:
                provider.render(job(), tmp_path / "out.mp4", ctx)
        finally:
            provider.close()
        assert len(api.seen) == 1, f"{how}: the create was sent {len(api.seen)} times"
    entry = ctx.journal.read()
    assert entry["uncertain"] is True and entry["provider"] == "gemini" and entry["sent"].endswith("Z")
    assert "may have started and been charged" in info.value.message and "--resubmit pier" in info.value.message


@pytest.mark.parametrize("status", [429, 503])
def test_a_create_the_server_turned_away_is_retried(tmp_path, google_fake, status):  # noqa: F811
    google_fake.fail("submit", status, times=2, retry_after="0")
    provider = gemini(google_fake.url)
    provider.env = {"GEMINI_API_KEY": google_fake.api_key}
    ctx = render_context(tmp_path)
    try:
        provider.render(job(), tmp_path / "out.mp4", ctx)
    finally:
        provider.close()
    assert google_fake.count("submit") == 3 and google_fake.submissions == {PROMPT: 1}
    assert ctx.journal.read()["operation"]  # journaled as usual, not uncertain


def test_connection_refused_is_retried_and_a_read_timeout_is_not():
    calls: list[str] = []

    def refused_twice(request: httpx.Request) -> httpx.Response:
        calls.append("refused")
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"name": "op"})

    with httpx.Client(transport=httpx.MockTransport(refused_twice)) as client:
        response = request_with_retries(client, "POST", "http://127.0.0.1:9/create", provider="p",
                                        sleep=lambda s: None, idempotent=False)
    assert response.json() == {"name": "op"} and len(calls) == 3

    def slow(request: httpx.Request) -> httpx.Response:
        calls.append("slow")
        raise httpx.ReadTimeout("timed out", request=request)

    calls.clear()
    with httpx.Client(transport=httpx.MockTransport(slow)) as client:
        with pytest.raises(UncertainSubmit, match="timed out"):
            request_with_retries(client, "POST", "http://127.0.0.1:9/create", provider="p",
                                 sleep=lambda s: None, idempotent=False)
        assert calls == ["slow"]
        calls.clear()
        with pytest.raises(ProviderError, match="gave up after 6 tries"):  # a poll (idempotent) is retried
            request_with_retries(client, "GET", "http://127.0.0.1:9/poll", provider="p", sleep=lambda s: None)
        assert len(calls) == 6


# ---- #12.5 a clip of another length is kept -----------------------------------------------------


class LongClips(FakeProvider):
    """A gateway that returns 8 s whatever was asked."""

    def render(self, job, dest, ctx):
        return super().render(dataclasses.replace(job, duration=8), dest, ctx)


def test_a_longer_clip_than_requested_is_kept_used_and_reported(tmp_path, monkeypatch, fake_provider):
    import storyboard.providers as providers
    from storyboard.build import build, open_project, plan_project
    from storyboard.executor import Outcome
    from storyboard.plan_view import view

    monkeypatch.setitem(providers.BUILTIN, "fake", "tests.test_paid_once:LongClips")
    board = tmp_path / "storyboard.toml"
    board.write_text('[film]\nprovider = "fake"\nresolution = "360p"\n\n'  # 360p: a quarter of 720p's stitch
                     '[[shot]]\nid = "a"\nprompt = "a fox"\nduration = 4\n\n'
                     '[[shot]]\nid = "b"\ncontinues = "a"\nprompt = "the fox runs"\nduration = 4\n')
    report = build(open_project(board))
    assert report.shots["a"].outcome is Outcome.RENDERED and not report.failed
    assert "returned 8.00 s for a 4.00 s request; kept" in report.shots["a"].warning
    assert report.film is not None and report.film.duration == pytest.approx(16, abs=0.1)

    again = build(open_project(board))
    assert again.shots["a"].outcome is Outcome.CACHED and len(FakeProvider.calls) == 2  # not paid for twice
    project = open_project(board)
    steps, _ = plan_project(project)
    assert steps[0].status == "cached" and "warning: fake returned 8.00 s" in steps[0].reason
    problems = view(project, steps).problems
    assert "warning: shot 'a': fake returned 8.00 s for a 4.00 s request; kept (it was paid for) and used as it " \
           "is" in problems
