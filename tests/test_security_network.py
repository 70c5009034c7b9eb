"""Issue #11, the network half: a storyboard from a stranger sends no key astray and cannot hang a build.

One test per attack, each reproducing it on loopback: a "remote" host is reached only through an
HTTP_PROXY that is itself a loopback listener, so nothing leaves the machine.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from storyboard.errors import ProviderError, StoryboardFileError
from storyboard.job import RenderJob
from storyboard.load import load
from storyboard.providers import ProviderSettings
from storyboard.providers._ratelimit import RateLimiter
from storyboard.providers._transfer import Limits, send
from storyboard.providers.apiframe import ApiframeProvider
from storyboard.providers.gemini import GeminiProvider
from storyboard.providers.vertex import VertexProvider, VertexSettings
from tests._cli import clean_env as without_settings
from tests._cli import storyboard
from tests.fakes import render_context
from tests.fakes.google_server import FakeGoogle, clip
from tests.fakes.hostile import Loopback, Proxy, redirect, reply_json

KEY = "AIzaFAKE-security-key-0123456789"
STRANGER = "films.example"

BOARD = """
[film]
output = "out/film.mp4"
provider = "gemini"
duration = 4

[providers.gemini]
allow_retired = true  # the fake still serves the shut-down preview models
base_url = "{base_url}"
poll_interval = 0.01

[[shot]]
id = "harbour"
prompt = "a fishing boat leaves the harbour at dawn"
"""


def write_board(root: Path, base_url: str, text: str = BOARD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    board = root / "storyboard.toml"
    board.write_text(textwrap.dedent(text.format(base_url=base_url)))
    return board


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without keys, proxies or storyboard settings, plus `extra`."""
    proxies = ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
               "all_proxy")
    return {k: v for k, v in without_settings(**extra).items() if k not in proxies or k in extra}


def gemini_job(**fields) -> RenderJob:
    return RenderJob(provider="gemini", model="veo-3.1-generate-preview", prompt="a lighthouse", duration=4,
                     **fields)


def gemini_at(url: str, **env: str) -> GeminiProvider:
    return GeminiProvider(ProviderSettings(base_url=url, poll_interval=0.0), env={"GEMINI_API_KEY": KEY, **env},
                          rng=random.Random(0))


def gemini_api(video, poll=None):
    """An answer function shaped like the Gemini API whose poll and video download the test scripts."""

    def answer(handler, seen):
        if seen.method == "POST" and seen.path.endswith(":predictLongRunning"):
            reply_json(handler, {"name": "models/veo/operations/op1"})
        elif seen.path == "/v1beta/models/veo/operations/op1":
            if poll is not None:
                poll(handler, seen)
            else:
                uri = f"http://{handler.headers['Host']}/files/f1"
                reply_json(handler, {"done": True, "response": {"generateVideoResponse": {
                    "generatedSamples": [{"video": {"uri": uri}}]}}})
        elif seen.path == "/files/f1":
            video(handler, seen)
        else:
            reply_json(handler, {"error": {"message": f"no route {seen.path}"}}, 404)

    return answer


# ---- 1. a base_url in the file does not take the key anywhere --------------------------------


@pytest.fixture
def fake(google_fake: FakeGoogle):
    google_fake.api_key = KEY
    yield google_fake
    google_fake.api_key = "fake-gemini-key"


def test_a_strangers_base_url_is_refused_and_the_key_goes_only_where_the_user_says(tmp_path, fake):
    board = write_board(tmp_path / "board", f"http://{STRANGER}:8080")
    with Proxy({STRANGER: fake.url}, rewrite={fake.url: f"http://{STRANGER}:8080"}) as proxy:
        env = clean_env(GEMINI_API_KEY=KEY, HTTP_PROXY=proxy.url, NO_PROXY="")
        for command in ("validate", "build"):
            refused = storyboard(command, str(board), env=env)
            assert refused.returncode == 2, refused.stderr
            error = refused.stderr.strip().splitlines()[-1]
            assert str(board) in error and "[providers.gemini] field 'base_url'" in error
            assert f"--allow-base-url {STRANGER}" in error and "STORYBOARD_GEMINI_BASE_URL" in error
            assert "Traceback" not in refused.stderr
        assert proxy.seen == [] and fake.stats()["counts"] == {}

        plan = storyboard("plan", str(board), "--allow-base-url", STRANGER, env=env)
        assert plan.returncode == 0, plan.stderr
        assert f"gemini: key sent to {STRANGER}:8080 (allowed by you)" in plan.stdout
        built = storyboard("build", str(board), "--allow-base-url", STRANGER, "--yes", env=env)
        assert built.returncode == 0, built.stderr
    keyed = {s.host for s in proxy.seen if s.headers.get("x-goog-api-key") == KEY}
    assert keyed == {STRANGER}
    assert any(s.path.endswith(":predictLongRunning") for s in proxy.seen if s.host == STRANGER)
    assert (board.parent / "out" / "film.mp4").is_file()


def test_the_environment_variable_is_an_opt_in_and_plan_names_the_official_host(tmp_path, fake):
    board = write_board(tmp_path / "board", f"http://{STRANGER}:8080")
    env = clean_env(GEMINI_API_KEY=KEY, STORYBOARD_GEMINI_BASE_URL=fake.url)
    assert storyboard("validate", str(board), env=env).returncode == 0
    official = write_board(tmp_path / "official", "https://generativelanguage.googleapis.com")
    plan = storyboard("plan", str(official), env=clean_env(GEMINI_API_KEY=KEY))
    assert plan.returncode == 0, plan.stderr
    assert "gemini: key sent to generativelanguage.googleapis.com\n" in plan.stdout


@pytest.mark.parametrize("base_url, why", [
    ("http://generativelanguage.googleapis.com", "unencrypted"),
    ("https://generativelanguage.googleapis.com.films.example", "is not gemini's own host"),
    ("https://key@generativelanguage.googleapis.com", "user name or password"),
    ("ftp://127.0.0.1/", r"not an http\(s\) URL"),
])
def test_lookalike_base_urls_are_refused(tmp_path, base_url, why):
    board = write_board(tmp_path, base_url)
    with pytest.raises(StoryboardFileError, match=why) as info:
        load(board)
    assert re.match(rf"{re.escape(str(board))}: line \d+: \[providers\.gemini\] field 'base_url'", info.value.message)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9", "http://127.8.0.1:9", "http://localhost:9",
                                      "http://[::1]:9", "https://generativelanguage.googleapis.com/"])
def test_loopback_and_the_official_host_need_no_opt_in(tmp_path, base_url):
    assert load(write_board(tmp_path, base_url)).providers["gemini"].base_url == base_url


def test_vertex_location_and_storage_cannot_point_the_token_elsewhere(tmp_path):
    text = """
    [film]
    provider = "vertex"
    duration = 4
    [providers.vertex]
    project = "p"
    {extra}
    [[shot]]
    id = "a"
    prompt = "p"
    """
    cases = {'location = "x.films.example#"': "field 'location'",
             'storage_uri = "gs://b/"\n    storage_base_url = "https://films.example"': "field 'storage_base_url'"}
    for extra, field in cases.items():
        with pytest.raises(StoryboardFileError, match=field):
            load(write_board(tmp_path / str(len(field)), "", textwrap.dedent(text).replace("{extra}", extra)))
    fine = 'location = "europe-west4"\nstorage_uri = "gs://b/"'
    assert load(write_board(tmp_path / "fine", "", textwrap.dedent(text).replace("{extra}", fine)))
    vertex = VertexProvider(VertexSettings(location="europe-west4", storage_uri="gs://b/"), env={})
    assert vertex.key_hosts() == ["europe-west4-aiplatform.googleapis.com", "storage.googleapis.com"]


def test_a_provider_built_by_hand_refuses_before_sending_the_key(tmp_path, monkeypatch):
    with Loopback(lambda h, s: reply_json(h, {})) as api:
        monkeypatch.setenv("HTTP_PROXY", api.url)  # were the key to leave, it would land here
        monkeypatch.setenv("NO_PROXY", "")
        provider = gemini_at(f"http://{STRANGER}:8080")
        with pytest.raises(ProviderError, match=f"shot 'shot'.*allow-base-url {STRANGER}"):
            provider.render(gemini_job(), tmp_path / "out.mp4", render_context(tmp_path))
    assert api.seen == []


# ---- 2. no key follows a redirect to another origin ------------------------------------------


def test_a_cross_origin_redirect_of_a_submit_carries_neither_key_nor_body(tmp_path):
    with Loopback(lambda h, s: reply_json(h, {"name": "stolen"})) as elsewhere:
        def answer(handler, seen):
            redirect(handler, f"{elsewhere.url}/collect", 307)

        with Loopback(answer) as api:
            provider = gemini_at(api.url)
            with pytest.raises(ProviderError, match="redirected .* to another host") as info:
                provider.render(gemini_job(), tmp_path / "out.mp4", render_context(tmp_path, shot_id="harbour"))
            provider.close()
    assert elsewhere.seen == []
    assert len(api.seen) == 1 and api.seen[0].headers["x-goog-api-key"] == KEY
    assert info.value.message.startswith("shot 'harbour': gemini:") and KEY not in info.value.message


def test_apiframe_keeps_its_key_on_a_redirected_poll(tmp_path):
    with Loopback(lambda h, s: reply_json(h, {"status": "QUEUED"})) as elsewhere:
        def answer(handler, seen):
            if seen.path == "/v2/videos/generate":
                reply_json(handler, {"jobId": "j1", "status": "QUEUED"}, 202)
            else:
                redirect(handler, f"{elsewhere.url}/v2/jobs/j1", 302)

        with Loopback(answer) as api:
            provider = ApiframeProvider(ProviderSettings(base_url=api.url, poll_interval=0.0),
                                        env={"APIFRAME_API_KEY": KEY}, rng=random.Random(0))
            job = RenderJob(provider="apiframe", model="veo-3.1", prompt="p", duration=8)
            with pytest.raises(ProviderError, match="redirected"):
                provider.render(job, tmp_path / "out.mp4", render_context(tmp_path))
            provider.close()
    assert elsewhere.seen == []
    assert [s.headers["x-api-key"] for s in api.seen] == [KEY, KEY]


def test_a_same_origin_redirect_is_followed_with_its_body():
    seen = []

    def handler(request):
        seen.append((request.method, request.url.path, request.content))
        if request.url.path == "/old":
            return httpx.Response(307, headers={"Location": "/new"})
        return httpx.Response(200, json={"ok": True})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        response = send(client, "POST", "https://api.test/old", provider="p", json={"a": 1})
    assert response.json() == {"ok": True}
    assert seen == [("POST", "/old", b'{"a":1}'), ("POST", "/new", b'{"a":1}')]


# ---- 3. bounded reads ------------------------------------------------------------------------

FAST = {"STORYBOARD_SLOW_GRACE_SECONDS": "0.3"}


def trickle(claimed: int | None):
    def video(handler, seen):
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        if claimed is not None:
            handler.send_header("Content-Length", str(claimed))
        handler.end_headers()
        for _ in range(400):  # a byte every 20 ms: at most 8 s, far more than the test allows
            handler.wfile.write(b"\0")
            handler.wfile.flush()
            time.sleep(0.02)

    return video


@pytest.mark.parametrize("claimed, message", [(2_000_000_000, "announced as 1907.3 MiB"),
                                              (1_000_000, "too slow"), (None, "too slow")])
def test_a_trickling_download_fails_in_bounded_time_and_leaves_nothing(tmp_path, claimed, message):
    with Loopback(gemini_api(trickle(claimed))) as api:
        provider = gemini_at(api.url, **FAST)
        dest = tmp_path / "clip.mp4"
        started = time.monotonic()
        with pytest.raises(ProviderError, match=message) as info:
            provider.render(gemini_job(), dest, render_context(tmp_path, shot_id="harbour"))
        provider.close()
    assert time.monotonic() - started < 5
    assert info.value.message.startswith("shot 'harbour': gemini: the video download")
    assert not dest.exists()
    assert [s.path for s in api.seen].count("/files/f1") == 1  # not retried: it would be as slow again


def test_a_download_larger_than_the_clip_can_be_is_cut_off(tmp_path):
    mp4 = clip(4, (256, 144)).read_bytes()

    def video(handler, seen):  # a valid MP4 followed by endless padding, length never announced
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for block in (mp4, *[bytes(1 << 20)] * 64):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
        handler.wfile.write(b"0\r\n\r\n")

    with Loopback(gemini_api(video)) as api:
        provider = gemini_at(api.url, STORYBOARD_MAX_VIDEO_BYTES=str(4 << 20))
        dest = tmp_path / "clip.mp4"
        with pytest.raises(ProviderError, match=r"is larger, more than the 4.0 MiB .*STORYBOARD_MAX_VIDEO_BYTES"):
            provider.render(gemini_job(), dest, render_context(tmp_path))
        provider.close()
    assert not dest.exists()
    assert Limits().video_bytes(8) == 8 * 50_000_000 // 8 + 16 * 1024 * 1024


@pytest.mark.parametrize("depth", [100_000, 500])
def test_deeply_nested_json_is_a_provider_error_naming_the_shot(tmp_path, depth):
    def poll(handler, seen):
        reply_json(handler, '{"done": true, "response": ' + "[" * depth + "]" * depth + "}")

    with Loopback(gemini_api(video=None, poll=poll)) as api:
        provider = gemini_at(api.url)
        with pytest.raises(ProviderError, match="nested deeper than 100 levels") as info:
            provider.render(gemini_job(), tmp_path / "c.mp4", render_context(tmp_path, shot_id="harbour"))
        provider.close()
    assert info.value.message.startswith("shot 'harbour': gemini:") and not info.value.retryable
    assert [s.path for s in api.seen].count("/v1beta/models/veo/operations/op1") == 1


@pytest.mark.parametrize("announced", [True, False])
def test_an_oversized_json_body_is_refused_while_streaming(tmp_path, announced):
    total = 400 * 1024 * 1024
    sent = []

    def poll(handler, seen):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if announced:
            handler.send_header("Content-Length", str(total))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        block = b" " * (1 << 20)
        for _ in range(total // len(block)):
            handler.wfile.write(block if announced else b"%x\r\n%s\r\n" % (len(block), block))
            sent.append(len(block))

    env = {"STORYBOARD_MAX_JSON_BYTES": str(1 << 20), "STORYBOARD_MAX_VIDEO_BYTES": "1000"}
    with Loopback(gemini_api(video=None, poll=poll)) as api:
        provider = gemini_at(api.url, **env)
        with pytest.raises(ProviderError, match=r"more than the 1\.0 MiB storyboard accepts \(set STORYBOARD_MAX_JSON_BYTES"):
            provider.render(gemini_job(), tmp_path / "c.mp4", render_context(tmp_path))
        provider.close()
    assert sum(sent) < 64 * 1024 * 1024  # the client hung up long before 400 MB


# ---- the rate limiter counts what was sent ---------------------------------------------------


class FakeTime:
    """A clock that moves only when someone sleeps; `late` makes each sleep overshoot (a busy machine)."""

    def __init__(self, late=lambda: 0.0) -> None:
        self.now, self.late = 0.0, late

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.late()


def test_a_late_request_holds_back_the_next_one():
    t = FakeTime()
    limiter = RateLimiter(1, clock=lambda: t.now)
    sent = []
    for late in (0.0, 40.0, 0.0):
        t.late = lambda late=late: late
        limiter.acquire(t.sleep)
        sent.append(t.now)
    assert sent == [0.0, 100.0, 160.0]  # asked-for slots would have let the third go at 120


def test_no_rolling_minute_holds_more_than_rpm_sends_even_when_sleeps_overshoot():
    rng = random.Random(11)
    t = FakeTime(late=lambda: rng.choice([0.0, 0.0, rng.uniform(0, 50)]))
    limiter = RateLimiter(60, clock=lambda: t.now)
    sent = []
    for _ in range(600):
        limiter.acquire(t.sleep)
        sent.append(t.now)
    busiest = max(sum(1 for s in sent if start <= s < start + 60) for start in sent)
    assert busiest == 60


def test_a_waiter_rechecks_when_the_request_ahead_of_it_went_late():
    t = FakeTime()
    limiter = RateLimiter(1, clock=lambda: t.now)
    limiter.acquire(t.sleep)  # sent at 0
    asleep = {"b": threading.Event(), "c": threading.Event()}
    wake = {"b": threading.Event(), "c": threading.Event()}
    asked: dict[str, list[float]] = {"b": [], "c": []}
    sent = {}

    def caller(name):
        def sleep(seconds):
            asked[name].append(seconds)
            asleep[name].set()
            wake[name].wait(5)
            wake[name].clear()

        limiter.acquire(sleep)
        sent[name] = t.now

    b = threading.Thread(target=caller, args=("b",))
    b.start()
    assert asleep["b"].wait(5)  # b waits for 60
    t.now = 10.0
    c = threading.Thread(target=caller, args=("c",))
    c.start()
    assert asleep["c"].wait(5)  # c planned 60 s after b's slot: 120
    asleep["c"].clear()
    t.now = 100.0  # b overslept
    wake["b"].set()
    b.join(5)
    t.now = 120.0
    wake["c"].set()
    assert asleep["c"].wait(5)  # c sees b went at 100 and sleeps again
    t.now = 160.0
    wake["c"].set()
    c.join(5)
    assert asked == {"b": [60.0], "c": [110.0, 40.0]}
    assert sent == {"b": 100.0, "c": 160.0}


def nested_poll(handler, seen):
    reply_json(handler, "[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("api, message", [
    (gemini_api(video=None, poll=nested_poll), "nested deeper than 100 levels"),
    (gemini_api(trickle(1_000_000)), "the video download is too slow"),
], ids=["nested-json", "trickle"])
def test_a_hostile_answer_fails_the_build_cleanly_and_caches_nothing(tmp_path, api, message):
    with Loopback(api) as server:
        board = write_board(tmp_path / "board", server.url)
        result = storyboard("build", str(board), "--yes", env=clean_env(GEMINI_API_KEY=KEY, **FAST))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and KEY not in result.stderr + result.stdout
    assert f"failed: harbour: shot 'harbour': gemini:" in result.stderr and message in result.stderr
    objects = board.parent / ".storyboard" / "objects"
    assert not objects.exists() or not [p for p in objects.rglob("*") if p.is_file()]


def test_an_object_store_endpoint_in_the_file_needs_the_users_say_so(tmp_path, monkeypatch):
    text = """
    [film]
    provider = "uniall"
    [providers.uniall]
    upload = "s3://films/in"
    public_url = "https://films.s3.amazonaws.com/{key}"
    storage_options = { client_kwargs = { endpoint_url = "https://films.example" } }
    [[shot]]
    id = "a"
    prompt = "p"
    """
    board = tmp_path / "storyboard.toml"
    board.write_text(textwrap.dedent(text))
    with pytest.raises(StoryboardFileError, match=r"\[providers.uniall\] field 'storage_options.endpoint_url'"):
        load(board)
    monkeypatch.setenv("STORYBOARD_ALLOW_BASE_URL", "films.example")
    assert load(board).providers["uniall"].storage_options["client_kwargs"]["endpoint_url"] == "https://films.example"
