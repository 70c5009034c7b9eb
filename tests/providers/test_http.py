import random
import threading
from pathlib import Path

import httpx
import pytest

from storyboard.errors import ProviderError, StoryboardError
from storyboard.providers._http import (
    RateLimiter,
    RetryPolicy,
    api_message,
    download,
    raise_for_api_error,
    request_with_retries,
    retry_after,
)
from storyboard.providers._transfer import Limits, decode_json
from storyboard.providers._transfer import send as send_once
from tests.fakes import Recorder
from tests.fakes.google_server import clip


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return clip(4, (256, 144)).read_bytes()


def client_for(responses, calls=None):
    """A client whose transport answers from `responses` (Response, exception or callable) in order."""
    answers = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(request)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    return httpx.Client(transport=httpx.MockTransport(handler))


def send(client, sleep, **kwargs):
    return request_with_retries(client, "POST", "https://api.test/v1/jobs", provider="p", sleep=sleep,
                                rng=random.Random(7), **kwargs)


@pytest.mark.parametrize("body, expected", [
    ({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}},
     "API key not valid. (INVALID_ARGUMENT)"),
    ({"error": "Insufficient credits"}, "Insufficient credits"),
    ([{"error": {"message": "wrapped"}}], "wrapped"),
    ({"message": "plain message"}, "plain message"),
])
def test_api_message_reads_the_common_envelopes(body, expected):
    assert api_message(httpx.Response(400, json=body)) == expected


def test_api_message_falls_back_to_text_and_reason():
    assert api_message(httpx.Response(502, text="<html>bad gateway</html>")) == "<html>bad gateway</html>"
    assert api_message(httpx.Response(503)) == "Service Unavailable"


def test_raise_for_api_error_maps_status_and_retryability():
    request = httpx.Request("POST", "https://api.test/v1beta/models/m:predictLongRunning?key=x")
    with pytest.raises(ProviderError) as info:
        raise_for_api_error(httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "slow down"},
                                           request=request), "gemini")
    err = info.value
    assert (err.status, err.retryable, err.retry_after, err.provider) == (429, True, 7.0, "gemini")
    assert err.message == "gemini: HTTP 429 from POST /v1beta/models/m:predictLongRunning: slow down"
    with pytest.raises(ProviderError) as info:
        raise_for_api_error(httpx.Response(400, json={"error": "bad"}, request=request), "gemini")
    assert not info.value.retryable and info.value.retry_after is None
    raise_for_api_error(httpx.Response(200, request=request), "gemini")


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("3") == 3.0
    assert retry_after(" 1.5 ") == 1.5
    assert retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500.0) == 10.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412500.0) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_429_honours_retry_after_then_succeeds():
    sleep = Recorder()
    client = client_for([httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "quota"}),
                         httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}),
                         httpx.Response(200, json={"ok": True})])
    with pytest.raises(ProviderError, match="asks to wait"):  # a wait of decades is not honoured
        send(client, sleep)
    assert sleep.firsts == [3.0]

    sleep = Recorder()
    client = client_for([httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={})])
    assert send(client, sleep).status_code == 200
    assert sleep.firsts == [3.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_retry_with_growing_jittered_backoff(status):
    sleep, calls = Recorder(), []
    client = client_for([httpx.Response(status)] * 3 + [httpx.Response(200, json={})], calls)
    assert send(client, sleep).status_code == 200
    assert len(calls) == 4
    waits = sleep.firsts
    assert [1 <= waits[0] <= 2, 2 <= waits[1] <= 4, 4 <= waits[2] <= 8] == [True] * 3


def test_backoff_is_capped_and_seeded():
    policy = RetryPolicy(base=2, cap=60)
    a = [policy.backoff(n, random.Random(1)) for n in range(10)]
    b = [policy.backoff(n, random.Random(1)) for n in range(10)]
    assert a == b and max(a) <= 60 and min(a[6:]) >= 30


def test_gives_up_after_the_policy_tries():
    sleep, calls = Recorder(), []
    client = client_for([httpx.Response(503, json={"error": {"message": "overloaded"}})], calls)
    with pytest.raises(ProviderError) as info:
        send(client, sleep)
    assert len(calls) == 6 and len(sleep.calls) == 5
    assert info.value.retryable and info.value.status == 503
    assert "overloaded" in info.value.message and "gave up after 6 tries" in info.value.message


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_fail_at_once_with_the_api_message(status):
    sleep, calls = Recorder(), []
    client = client_for([httpx.Response(status, json={"error": {"message": f"nope {status}"}})], calls)
    with pytest.raises(ProviderError, match=f"HTTP {status} .*nope {status}") as info:
        send(client, sleep)
    assert len(calls) == 1 and sleep.calls == []
    assert not info.value.retryable and info.value.status == status


@pytest.mark.parametrize("fault", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                   httpx.RemoteProtocolError("Server disconnected without sending a response.")])
def test_transport_faults_retry(fault):
    sleep = Recorder()
    assert send(client_for([fault, httpx.Response(200, json={})]), sleep).status_code == 200
    assert len(sleep.calls) == 1


def test_a_transport_fault_that_cannot_heal_fails_at_once():
    sleep = Recorder()
    with pytest.raises(ProviderError, match="UnsupportedProtocol") as info:
        send(client_for([httpx.UnsupportedProtocol("ftp")]), sleep)
    assert not info.value.retryable and sleep.calls == []
    assert isinstance(info.value.__cause__, httpx.UnsupportedProtocol)


def test_cancellation_from_sleep_passes_through():
    class Stop(Exception):
        pass

    def sleep(seconds):
        raise Stop

    with pytest.raises(Stop):
        send(client_for([httpx.Response(503), httpx.Response(200)]), sleep)


def test_every_try_waits_for_the_rate_limiter():
    clock = [0.0]
    limiter = RateLimiter(1, clock=lambda: clock[0])
    sleep = Recorder()
    client = client_for([httpx.Response(503), httpx.Response(200, json={})])
    send(client, sleep, limiter=limiter)
    assert sleep.calls[-1] == (60.0,)  # the retry's slot, one minute after the first try


def test_rate_limiter_allows_a_burst_per_minute_then_spaces():
    clock, slept = [0.0], []
    limiter = RateLimiter(2, clock=lambda: clock[0], sleep=slept.append)
    assert [limiter.acquire() for _ in range(5)] == [0, 0, 60, 60, 120]
    assert slept == [60, 60, 120]
    clock[0] = 500.0
    assert limiter.acquire() == 0


def test_rate_limiter_below_one_per_minute_and_unlimited():
    clock = [0.0]
    slow = RateLimiter(0.5, clock=lambda: clock[0], sleep=lambda s: None)
    assert [slow.acquire() for _ in range(3)] == [0, 120, 240]
    free = RateLimiter(None, sleep=lambda s: pytest.fail("must not sleep"))
    assert [free.acquire() for _ in range(100)] == [0] * 100


def test_rate_limiter_is_shared_safely_between_threads():
    limiter = RateLimiter(10, clock=lambda: 0.0, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            wait = limiter.acquire()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == sorted(60.0 * (i // 10) for i in range(80))


def download_with(handler, tmp_path: Path, **kwargs):
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"")
    client = httpx.Client(transport=httpx.MockTransport(handler))
    sleep = Recorder()
    download(client, "https://files.test/v1/f1:download?alt=media", dest, provider="p", sleep=sleep,
             rng=random.Random(1), **kwargs)
    return dest, sleep


def test_download_keeps_credentials_on_its_origin(tmp_path, mp4):
    seen = []

    def handler(request):
        seen.append((request.url.host, request.headers.get("x-key")))
        if request.url.host == "files.test":
            return httpx.Response(302, headers={"Location": "https://cdn.elsewhere.test/blob"})
        return httpx.Response(200, content=mp4)

    dest, _ = download_with(handler, tmp_path, headers={"x-key": "secret"})
    assert dest.read_bytes() == mp4
    assert seen == [("files.test", "secret"), ("cdn.elsewhere.test", None)]

    seen.clear()
    download_with(handler, tmp_path, headers={"x-key": "secret"}, trusted=lambda url: True)
    assert seen == [("files.test", "secret"), ("cdn.elsewhere.test", "secret")]


def test_download_reports_progress_and_rejects_what_is_not_mp4(tmp_path, mp4):
    fractions = []
    download_with(lambda r: httpx.Response(200, content=mp4), tmp_path, progress=fractions.append)
    assert fractions[-1] == 1.0
    with pytest.raises(ProviderError, match="not an MP4"):
        download_with(lambda r: httpx.Response(200, content=b"<html>login</html>"), tmp_path)
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(ProviderError, match="does not decode"):
        download_with(lambda r: httpx.Response(200, content=mp4[:32] + bytes(4096)), tmp_path)


def test_download_retries_a_short_body_then_gives_up_and_removes_the_file(tmp_path, mp4):
    def short(request):
        return httpx.Response(200, headers={"Content-Length": str(len(mp4) + 100)}, content=mp4)

    with pytest.raises(ProviderError, match=r"stopped at \d+ of \d+ bytes.*gave up after 6 tries") as info:
        download_with(short, tmp_path)
    assert info.value.retryable
    assert not (tmp_path / "out.mp4").exists()


def test_limits_come_from_the_environment_and_refuse_nonsense():
    limits = Limits.from_env({"STORYBOARD_MAX_JSON_BYTES": "2048", "STORYBOARD_MAX_VIDEO_BYTES": "1e6",
                              "STORYBOARD_MIN_BYTES_PER_SECOND": "10", "STORYBOARD_SLOW_GRACE_SECONDS": "0.5"})
    assert (limits.max_json, limits.max_video, limits.min_rate, limits.grace) == (2048, 1_000_000, 10.0, 0.5)
    assert limits.video_bytes(8) == 1_000_000 and Limits().video_bytes(4) == 25_000_000 + 16 * 1024 * 1024
    with pytest.raises(StoryboardError, match="STORYBOARD_MAX_JSON_BYTES='lots' is not a number of bytes"):
        Limits.from_env({"STORYBOARD_MAX_JSON_BYTES": "lots"})


def test_nested_json_is_a_value_error_never_a_recursion_error():
    assert decode_json(b'{"a": [[1]]}') == {"a": [[1]]}
    for depth in (101, 100_000):
        with pytest.raises(ValueError, match="nested deeper than 100 levels"):
            decode_json("[" * depth + "]" * depth)
    deep = httpx.Response(400, content=b"[" * 100_000 + b"]" * 100_000)
    assert api_message(deep).startswith("[[[")


def test_api_calls_refuse_a_redirect_to_another_origin_and_turn_303_into_a_get():
    seen = []

    def handler(request):
        seen.append((request.method, str(request.url), request.headers.get("x-goog-api-key"), request.content))
        if request.url.path == "/submit":
            return httpx.Response(303, headers={"Location": "/result?x=1"})
        if request.url.path == "/away":
            return httpx.Response(302, headers={"Location": "https://api.test:8443/collect"})
        return httpx.Response(200, json={"ok": True})

    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    headers = {"x-goog-api-key": "k"}
    assert send_once(client, "POST", "https://api.test/submit", provider="p", json={"a": 1}, headers=headers).json()
    assert seen == [("POST", "https://api.test/submit", "k", b'{"a":1}'),
                    ("GET", "https://api.test/result?x=1", "k", b"")]
    seen.clear()
    with pytest.raises(ProviderError, match=r"redirected \(HTTP 302\) to another host, https://api.test:8443") as info:
        request_with_retries(client, "GET", "https://api.test/away", provider="p", sleep=Recorder(), headers=headers)
    assert [s[1] for s in seen] == ["https://api.test/away"] and not info.value.retryable


def test_an_answer_over_the_cap_is_refused_before_it_is_read():
    def handler(request):
        return httpx.Response(200, headers={"Content-Length": str(50 << 20)}, content=b"x" * 10)

    with pytest.raises(ProviderError, match=r"announced as 50.0 MiB, more than the 16.0 MiB"):
        send_once(httpx.Client(transport=httpx.MockTransport(handler)), "GET", "https://api.test/op", provider="p")
