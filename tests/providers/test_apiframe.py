import hashlib
import logging
import random
from pathlib import Path

import httpx
import pytest
from PIL import Image

from storyboard.cache import cache_key
from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import Price, RenderJob, key_components
from storyboard.media import probe
from storyboard.providers import ProviderSettings
from storyboard.providers.apiframe import ApiframeProvider, result_url
from tests.fakes import render_context
from tests.fakes.apiframe_server import FAILURE, RESULT_SHAPES, FakeApiframe, apiframe_fake, apiframe_server  # noqa: F401

KEY = "afk_FAKE-distinctive-key-0123456789"
OPEN: list[ApiframeProvider] = []


@pytest.fixture(autouse=True)
def close_providers():
    yield
    while OPEN:
        OPEN.pop().close()


@pytest.fixture
def fake(apiframe_fake: FakeApiframe) -> FakeApiframe:  # noqa: F811
    apiframe_fake.api_key = KEY
    yield apiframe_fake
    apiframe_fake.api_key = "afk_fake"


def apiframe(fake: FakeApiframe, env: dict[str, str] | None = None, **settings) -> ApiframeProvider:
    settings.setdefault("base_url", fake.url)
    settings.setdefault("poll_interval", 0.01)
    provider = ApiframeProvider(ProviderSettings(**settings), env={"APIFRAME_API_KEY": KEY} if env is None else env,
                                rng=random.Random(0))
    OPEN.append(provider)
    return provider


def job(prompt: str = "A lighthouse at dusk", **fields) -> RenderJob:
    return RenderJob(provider="apiframe", model=fields.pop("model", "veo-3.1"), prompt=prompt, **fields)


def image(tmp_path: Path, name: str, color: str, fmt: str = "PNG") -> tuple[str, Path]:
    path = tmp_path / name
    Image.new("RGB", (32, 18), color).save(path, fmt)
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def render(provider, the_job, tmp_path, **ctx):
    context = render_context(tmp_path, **ctx)
    dest = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.mp4"
    return provider.render(the_job, dest, context), dest, context


def test_text_to_video_end_to_end(fake, tmp_path):
    the_job = job(seed=7, negative_prompt="blur")
    result, dest, ctx = render(apiframe(fake), the_job, tmp_path)

    info = probe(dest)
    assert (info.duration, info.width, info.height, info.has_audio) == (8.0, 1280, 720, True)
    assert result.cost == Price(20, "credits") and result.handle is None
    assert result.operation in fake.jobs and ctx.journal.read()["operation"] == result.operation
    assert [fake.count(e) for e in ("upload", "submit", "poll", "download")] == [0, 1, 3, 1]
    assert fake.bodies("submit") == [{"model": "veo-3.1", "prompt": "A lighthouse at dusk", "veoParams": {
        "duration": 8, "aspect_ratio": "16:9", "resolution": "720p", "generate_audio": True,
        "negative_prompt": "blur", "seed": 7}}]
    assert fake.keys_sent == [cache_key(key_components(the_job))]
    states = ctx.progress.firsts
    assert states[0] == "submitted" and states[-1] == "downloading"
    assert [c[1] for c in ctx.progress.calls if c[0] == "rendering"] == [0.0, 0.33]


def test_images_are_uploaded_just_before_the_submit_and_sent_as_urls(fake, tmp_path):
    first, first_path = image(tmp_path, "a.png", "red")
    last, last_path = image(tmp_path, "b.jpg", "blue", "JPEG")
    the_job = job(duration=6, aspect_ratio="9:16", first_frame=first, last_frame=last, audio=False)
    result, dest, _ = render(apiframe(fake), the_job, tmp_path, inputs={first: first_path, last: last_path})

    params = fake.bodies("submit")[0]["veoParams"]
    uploads = fake.uploads
    assert [uploads[params["image"]].content_type, uploads[params["last_frame"]].content_type] == [
        "image/png", "image/jpeg"]
    assert uploads[params["last_frame"]].data == last_path.read_bytes()
    submit_at = [name for name, _ in fake.requests].index("submit")
    assert all(u.seq < submit_at for u in uploads.values()) and len(uploads) == 2
    assert params["generate_audio"] is False and result.cost == Price(8, "credits")
    assert (probe(dest).duration, probe(dest).width) == (6.0, 720)


def test_reference_images_keep_their_order(fake, tmp_path):
    refs = [image(tmp_path, f"r{i}.png", c) for i, c in enumerate(("red", "green", "blue"))]
    render(apiframe(fake), job(references=tuple(d for d, _ in refs)), tmp_path, inputs=dict(refs))
    sent = fake.bodies("submit")[0]["veoParams"]["reference_images"]
    assert [fake.uploads[u].data for u in sent] == [p.read_bytes() for _, p in refs]
    assert fake.count("upload") == 3


@pytest.mark.parametrize("shape", sorted(RESULT_SHAPES))
def test_every_result_shape_is_read(fake, tmp_path, shape):
    fake.result_shape = shape
    _, dest, _ = render(apiframe(fake), job(duration=4), tmp_path)
    assert probe(dest).duration == 4.0


@pytest.mark.parametrize("outcome, says", [("failed", f'failed: "{FAILURE}"'), ("cancelled", "was cancelled")])
def test_a_failed_job_is_quoted_and_the_next_build_does_not_replay_it(fake, tmp_path, outcome, says):
    the_job = job()
    fake.outcome = outcome
    with pytest.raises(ProviderError, match=says) as info:
        render(apiframe(fake), the_job, tmp_path)
    assert not info.value.retryable and fake.count("download") == 0
    failed = next(iter(fake.jobs))
    ctx = render_context(tmp_path)
    assert ctx.journal.read()["failed_job"] == failed and "operation" not in ctx.journal.read()

    fake.outcome = "ok"
    result = apiframe(fake).render(the_job, tmp_path / "again.mp4", ctx)
    key = cache_key(key_components(the_job))
    assert fake.keys_sent == [key, f"{key}-{failed}"]
    assert result.operation != failed and fake.submissions == {"A lighthouse at dusk": 2}


def test_the_idempotency_key_returns_the_job_already_paid_for(fake, tmp_path):
    provider = apiframe(fake)
    first, _, _ = render(provider, job(), tmp_path, journal="one")
    second, _, _ = render(provider, job(), tmp_path, journal="two")  # as if the journal write was lost
    assert second.operation == first.operation
    assert fake.count("submit") == 2 and fake.submissions == {"A lighthouse at dusk": 1}


def test_402_names_the_credits_and_is_not_retried(fake, tmp_path):
    fake.credits = 5
    with pytest.raises(ProviderError, match="Insufficient credits: 20 credits required, 5 available") as info:
        render(apiframe(fake), job(), tmp_path)
    assert info.value.status == 402 and not info.value.retryable
    assert fake.count("submit") == 1 and fake.count("poll") == 0


def test_a_400_quotes_the_field_details(fake, tmp_path):
    with pytest.raises(ProviderError, match=r"HTTP 400 .*Validation failed \(model: Invalid enum value"):
        render(apiframe(fake), job(model="veo-9"), tmp_path)
    assert fake.count("submit") == 1


def test_429_then_success_honours_retry_after(fake, tmp_path):
    fake.fail("submit", 429, times=2, retry_after="2")
    _, _, ctx = render(apiframe(fake), job(), tmp_path)
    assert fake.count("submit") == 3 and fake.submissions == {"A lighthouse at dusk": 1}
    assert ctx.sleep.firsts[:2] == [2.0, 2.0]


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_on_poll_then_success(fake, tmp_path, status):
    fake.fail("poll", status, times=2)
    _, _, ctx = render(apiframe(fake), job(), tmp_path)
    assert fake.count("poll") == 5 and fake.count("submit") == 1
    assert len([s for s in ctx.sleep.firsts if s != 0.01]) == 2


@pytest.mark.parametrize("endpoint", ["upload", "submit", "poll", "download"])
def test_a_reset_connection_is_retried(fake, tmp_path, endpoint):
    first, path = image(tmp_path, "a.png", "red")
    fake.reset_connection(endpoint)
    _, dest, _ = render(apiframe(fake), job(first_frame=first), tmp_path, inputs={first: path})
    assert probe(dest).duration == 8.0
    assert fake.submissions == {"A lighthouse at dusk": 1}


def test_slow_polls_report_progress_until_done(fake, tmp_path):
    fake.pending_polls = 6
    _, _, ctx = render(apiframe(fake), job(), tmp_path)
    fractions = [c[1] for c in ctx.progress.calls if c[0] == "rendering"]
    assert len(fractions) == 6 and fractions == sorted(fractions) and fractions[-1] < 1
    assert ctx.sleep.firsts == [0.01] * 6


def test_401_fails_at_once_with_the_api_message(fake, tmp_path):
    with pytest.raises(ProviderError, match="HTTP 401 .*Invalid or missing API key") as info:
        render(apiframe(fake, env={"APIFRAME_API_KEY": "afk_wrong"}), job(), tmp_path)
    assert info.value.status == 401 and not info.value.retryable and fake.count("submit") == 1


def test_the_key_never_appears_in_messages_logs_or_the_journal(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail("poll", 503, times=1, message=f"echoing {KEY} back")
    fake.fail("download", 400, message=f"bad request for key {KEY}")
    with pytest.raises(ProviderError) as info:
        render(apiframe(fake), job(), tmp_path)
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert "***" in str(info.value) and all(KEY not in text for text in chain)
    assert KEY not in caplog.text and KEY not in (tmp_path / "journal" / "job.json").read_text()


def test_resume_polls_the_journaled_job_without_submitting(fake, tmp_path):
    job_id = fake.start_job("A lighthouse at dusk")
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": job_id, "provider": "apiframe", "submitted": "2026-01-01T00:00:00Z"})
    result = apiframe(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert result.operation == job_id and fake.count("submit") == 0 and fake.count("poll") == 3


def test_resume_of_a_vanished_job_submits_anew(fake, tmp_path):
    job_id = fake.start_job("A lighthouse at dusk")
    fake.forget_jobs()
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": job_id, "provider": "apiframe", "submitted": "2026-01-01T00:00:00Z"})
    result = apiframe(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert result.operation != job_id and fake.count("submit") == 1


def test_an_expired_result_fails_and_the_next_build_submits_a_new_job(fake, tmp_path):
    job_id = fake.start_job("A lighthouse at dusk")
    fake.jobs[job_id].polls = 0
    fake.expire_results()
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": job_id, "provider": "apiframe", "submitted": "2026-01-01T00:00:00Z"})
    with pytest.raises(ProviderError, match="has expired"):
        apiframe(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert ctx.journal.read()["failed_job"] == job_id


def test_a_truncated_download_is_retried(fake, tmp_path):
    fake.truncate(times=1)
    _, dest, _ = render(apiframe(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0 and fake.count("download") == 2


def test_a_download_that_stays_truncated_fails_and_keeps_the_job(fake, tmp_path):
    fake.truncate(times=10)
    ctx = render_context(tmp_path)
    with pytest.raises(ProviderError, match="gave up after 6 tries") as info:
        apiframe(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert info.value.retryable and not (tmp_path / "out.mp4").exists()
    assert ctx.journal.read()["operation"]


def test_a_long_negative_prompt_fails_before_any_request(fake, tmp_path):
    with pytest.raises(ProviderError, match="negative prompt is 2001 characters; Apiframe accepts at most 2000"):
        render(apiframe(fake), job(negative_prompt="x" * 2001), tmp_path)
    assert fake.total() == 0


def test_missing_key_and_the_base_url_override(fake, tmp_path):
    with pytest.raises(MissingKeyError, match="set APIFRAME_API_KEY"):
        render(apiframe(fake, env={}), job(), tmp_path)
    assert fake.total() == 0
    provider = apiframe(fake, env={"APIFRAME_API_KEY": KEY, "STORYBOARD_APIFRAME_BASE_URL": fake.url},
                        base_url="http://127.0.0.1:9")
    assert provider.base_url == fake.url
    render(provider, job(), tmp_path)
    assert fake.count("submit") == 1
    assert ApiframeProvider(env={}).base_url == "https://api.apiframe.ai"


def test_capabilities_and_prices():
    provider = ApiframeProvider(env={})
    caps = provider.capabilities("veo-3.1")
    assert not caps.extension and caps.resolutions == {"720p", "1080p"} and caps.max_prompt_chars == 4000
    assert caps.resumable and caps.local_media and caps.max_references == 3
    lite = provider.capabilities("veo-3.1-lite")
    assert lite.max_references == 0 and not lite.audio_control
    table = {(m, d, a): provider.price(job(model=m, duration=d, audio=a)).amount
             for m in ("veo-3.1", "veo-3.1-fast") for d in (4, 6, 8) for a in (False, True)}
    assert [table[("veo-3.1", d, a)] for d in (4, 6, 8) for a in (False, True)] == [5, 10, 8, 15, 10, 20]
    assert [table[("veo-3.1-fast", d, a)] for d in (4, 6, 8) for a in (False, True)] == [3, 5, 4, 6, 5, 8]
    assert provider.price(job(model="veo-3.1", resolution="1080p")).unit == "credits"
    assert provider.price(job(model="veo-3.1-lite")) is None


def test_lite_sends_no_audio_flag(fake, tmp_path):
    render(apiframe(fake), job(model="veo-3.1-lite"), tmp_path)
    assert "generate_audio" not in fake.bodies("submit")[0]["veoParams"]


def test_result_url_reads_every_form():
    url = "https://cdn.apiframe.ai/x/out.mp4"
    forms = [{"videos": [url]}, {"videos": [{"url": url}]}, {"outputs": [url]}, {"outputs": [{"url": url}]},
             {"video_url": url}, {"videoUrl": url}, {"url": url}, {"video": {"url": url}}, url]
    assert [result_url(f) for f in forms] == [url] * len(forms)
    assert result_url({"images": [url]}) is None and result_url(None) is None


def test_mock_transport_unknown_result_and_wrapped_job(tmp_path):
    job_id = "0b9f0000-0000-4000-8000-000000000000"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"jobId": job_id, "status": "QUEUED"})
        return httpx.Response(200, json={"job": {"id": job_id, "status": "completed", "result": {"weird": 1}}})

    provider = ApiframeProvider(env={"APIFRAME_API_KEY": KEY}, client=httpx.Client(transport=httpx.MockTransport(handler)))
    ctx = render_context(tmp_path)
    with pytest.raises(ProviderError, match=r'completed but its result has no video URL: \{"weird": 1\}'):
        provider.render(job(), tmp_path / "x.mp4", ctx)
    assert ctx.journal.read() is None  # nothing to replay differently: the same key returns the same job


def submit_raw(fake: FakeApiframe, body, **headers) -> httpx.Response:
    return httpx.post(f"{fake.url}/v2/videos/generate", json=body, headers={"X-API-Key": KEY, **headers})


@pytest.mark.parametrize("body, where", [
    ({"model": "veo-3.1", "prompt": "p", "extra": 1}, "extra"),
    ({"model": "veo-3.1", "prompt": "p", "veoParams": {"durationSeconds": 8}}, "veoParams.durationSeconds"),
    ({"model": "veo-3.1", "prompt": "p", "veoParams": {"resolution": "4k"}}, "veoParams.resolution"),
    ({"model": "veo-3.1", "prompt": "p", "veoParams": {"image": "https://x/a.png", "reference_images": ["https://x/b"]}},
     "veoParams.reference_images"),
    ({"model": "veo-3.1", "prompt": "p", "veoParams": {"last_frame": "https://x/a.png"}}, "veoParams.last_frame"),
    ({"model": "veo-3.1-lite", "prompt": "p", "veoParams": {"generate_audio": True}}, "veoParams.generate_audio"),
])
def test_the_fake_enforces_the_schema_and_veo_rules(fake, body, where):
    response = submit_raw(fake, body)
    assert response.status_code == 400 and where in response.json()["details"]
    assert fake.submissions == {}


def test_the_fake_refuses_expired_upload_urls(fake, tmp_path):
    fake.upload_lifetime = -1
    _, path = image(tmp_path, "a.png", "red")
    url = httpx.post(f"{fake.url}/v2/uploads", files={"file": ("a.png", path.read_bytes(), "image/png")},
                     headers={"X-API-Key": KEY}).json()["url"]
    response = submit_raw(fake, {"model": "veo-3.1", "prompt": "p", "veoParams": {"image": url}})
    assert response.status_code == 400 and "veoParams.image" in response.json()["details"]


def test_the_fake_runs_as_a_standalone_process():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.apiframe_server", "--pending-polls", "0"],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        httpx.post(f"{url}/_fake/config", json={"fail": [{"endpoint": "submit", "status": 503}], "credits": 100})
        body, headers = {"model": "veo-3.1", "prompt": "p"}, {"X-API-Key": "afk_fake"}
        assert httpx.post(f"{url}/v2/videos/generate", json=body, headers=headers).status_code == 503
        assert httpx.post(f"{url}/v2/videos/generate", json=body, headers=headers).status_code == 202
        assert httpx.get(f"{url}/_fake/stats").json()["submissions"] == {"p": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
