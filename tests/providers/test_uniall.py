import hashlib
import logging
import random
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydantic import ValidationError

from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import RenderJob
from storyboard.media import probe
from storyboard.providers.settings import validate_settings
from storyboard.providers.uniall import UniAllProvider, UniAllSettings, task_id, task_progress, tier, video_url
from tests.fakes import render_context
from tests.fakes.s3_server import S3Bucket, make_bucket, moto_endpoint, s3  # noqa: F401
from tests.fakes.uniall_server import FAIL_MESSAGE, FakeUniAll, uniall_fake, uniall_server  # noqa: F401

KEY = "sk-uniall-FAKE-distinctive-key-0123456789"
OPEN: list[UniAllProvider] = []


@pytest.fixture(autouse=True)
def close_providers():
    yield
    while OPEN:
        OPEN.pop().close()


@pytest.fixture
def fake(uniall_fake: FakeUniAll) -> FakeUniAll:  # noqa: F811
    uniall_fake.api_key = KEY
    yield uniall_fake
    uniall_fake.api_key = "fake-uniall-key"


def uniall(fake: FakeUniAll, bucket: S3Bucket | None = None, env: dict[str, str] | None = None,
           **settings) -> UniAllProvider:
    settings.setdefault("base_url", fake.url)
    settings.setdefault("poll_interval", 0.01)
    if bucket is not None:
        settings.setdefault("upload", bucket.upload_url("inputs"))
        settings.setdefault("public_url", bucket.public_url)
    provider = UniAllProvider(UniAllSettings(**settings), env={"UNIALL_API_KEY": KEY} if env is None else env,
                              rng=random.Random(0))
    OPEN.append(provider)
    return provider


def job(prompt: str = "A lighthouse at dusk", **fields) -> RenderJob:
    return RenderJob(provider="uniall", model=fields.pop("model", "veo3.1"), prompt=prompt, **fields)


def image(tmp_path: Path, name: str, color: str, fmt: str = "PNG") -> tuple[str, Path]:
    path = tmp_path / name
    Image.new("RGB", (32, 18), color).save(path, fmt)
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def render(provider, the_job, tmp_path, **ctx):
    context = render_context(tmp_path, **ctx)
    dest = tmp_path / f"{the_job.prompt[:8]}-{len(list(tmp_path.iterdir()))}.mp4"
    return provider.render(the_job, dest, context), dest, context


def test_text_to_video_end_to_end(fake, tmp_path):
    result, dest, ctx = render(uniall(fake), job(seed=7, negative_prompt="blur", duration=6), tmp_path)

    info = probe(dest)
    assert (info.duration, info.width, info.height, info.has_audio) == (6.0, 256, 144, True)
    assert result.operation.startswith("task_") and result.cost is None and result.handle is None
    assert ctx.journal.read()["operation"] == result.operation
    assert [fake.count(e) for e in ("submit", "poll", "download")] == [1, 3, 1]
    assert fake.submissions == {"A lighthouse at dusk": 1}
    assert fake.bodies("submit")[0] == {
        "model": "veo3.1-video-720p", "prompt": "A lighthouse at dusk", "size": "720p", "aspect_ratio": "16:9",
        "duration": 6, "extra_body": {"generate_audio": True, "negative_prompt": "blur", "seed": 7}}
    assert fake.headers("submit")[0]["authorization"] == f"Bearer {KEY}"
    states = ctx.progress.firsts
    assert states[0] == "submitted" and "rendering" in states and states[-1] == "downloading"
    assert [f for s, f in ctx.progress.calls if s == "rendering"] == [0.33, 0.66]


@pytest.mark.parametrize("model, resolution, aspect, sent", [
    ("veo3.1-fast", "1080p", "9:16", "veo3.1-fast-video-1080p"),
    ("veo3.1", "4k", "16:9", "veo3.1-video-4k"),
    ("veo3.1-video-4k", "4k", "16:9", "veo3.1-video-4k"),
])
def test_the_model_tier_follows_the_resolution(fake, tmp_path, model, resolution, aspect, sent):
    _, dest, _ = render(uniall(fake), job(model=model, resolution=resolution, aspect_ratio=aspect, audio=False),
                        tmp_path)
    body = fake.bodies("submit")[0]
    assert (body["model"], body["size"], body["aspect_ratio"]) == (sent, resolution, aspect)
    assert body["extra_body"] == {"generate_audio": False}
    assert probe(dest).width == (144 if aspect == "9:16" else 256)


def test_first_and_last_frame_are_published_and_fetched_by_the_service(fake, s3, tmp_path):  # noqa: F811
    first, first_path = image(tmp_path, "a.png", "red")
    last, last_path = image(tmp_path, "b.jpg", "blue", "JPEG")
    the_job = job(duration=4, first_frame=first, last_frame=last)
    _, dest, ctx = render(uniall(fake, s3), the_job, tmp_path, inputs={first: first_path, last: last_path})

    body = fake.bodies("submit")[0]
    assert body["image"] == f"{s3.endpoint}/{s3.bucket}/inputs/{first}.png"
    assert body["last_image"] == f"{s3.endpoint}/{s3.bucket}/inputs/{last}.jpg"
    assert fake.fetched == {body["image"]: first, body["last_image"]: last}
    assert s3.keys() == sorted([f"inputs/{first}.png", f"inputs/{last}.jpg"])
    assert probe(dest).duration == 4.0
    assert "uploading" in ctx.progress.firsts


def test_reference_images_go_in_images(fake, s3, tmp_path):  # noqa: F811
    refs = [image(tmp_path, f"r{i}.png", c) for i, c in enumerate(("red", "green", "blue"))]
    the_job = job(references=tuple(d for d, _ in refs), resolution="1080p")
    render(uniall(fake, s3), the_job, tmp_path, inputs=dict(refs))

    body = fake.bodies("submit")[0]
    assert body["model"] == "veo3.1-video-1080p"
    assert body["images"] == [f"{s3.endpoint}/{s3.bucket}/inputs/{d}.png" for d, _ in refs]
    assert sorted(fake.fetched.values()) == sorted(d for d, _ in refs)
    assert "image" not in body


def test_one_reference_fails_before_anything_is_uploaded_or_paid(fake, s3, tmp_path):  # noqa: F811
    ref, path = image(tmp_path, "r.png", "red")
    with pytest.raises(ProviderError, match="takes 2 or 3 URLs, but the shot has 1") as info:
        render(uniall(fake, s3), job(references=(ref,)), tmp_path, inputs={ref: path})
    assert not info.value.retryable
    assert fake.count("submit") == 0 and s3.keys() == []


def test_extension_publishes_the_source_clip_and_returns_source_plus_seven(fake, s3, tmp_path):  # noqa: F811
    provider = uniall(fake, s3)
    _, source, _ = render(provider, job("The keeper climbs"), tmp_path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    _, dest, _ = render(provider, job("Lightning flashes", extends=digest, seed=3), tmp_path,
                        inputs={digest: source}, journal="ext")

    body = fake.bodies("submit")[1]
    assert body == {"model": "veo3.1-video-720p", "prompt": "Lightning flashes", "size": "720p",
                    "video": f"{s3.endpoint}/{s3.bucket}/inputs/{digest}.mp4",
                    "extra_body": {"generate_audio": True, "seed": 3}}
    assert fake.fetched[body["video"]] == digest
    assert s3.head(f"inputs/{digest}.mp4")["ContentType"] == "video/mp4"
    assert probe(dest).duration == 15.0


def test_without_an_upload_target_inputs_fail_before_paying(fake, tmp_path):
    first, path = image(tmp_path, "a.png", "red")
    with pytest.raises(ProviderError, match=r"only as URLs: set upload = \"s3://…\" and public_url in "
                                            r"\[providers.uniall\]"):
        render(uniall(fake), job(first_frame=first), tmp_path, inputs={first: path})
    assert fake.count("submit") == 0


@pytest.mark.parametrize("shape", ["id", "task_id", "data.id", "data.task_id", "data"])
def test_every_plausible_create_response_names_the_task(fake, tmp_path, shape):
    fake.create_shape = shape
    result, dest, _ = render(uniall(fake), job(), tmp_path)
    assert result.operation.startswith("task_") and probe(dest).duration == 8.0


def test_a_create_response_without_a_task_id_is_quoted(fake, tmp_path):
    fake.create_shape = "empty"
    with pytest.raises(ProviderError, match=r"names no task id .*: \{\}"):
        render(uniall(fake), job(), tmp_path)
    assert fake.count("submit") == 1 and fake.count("poll") == 0


@pytest.mark.parametrize("shape", ["video_url", "result.video_url", "result.outputs"])
def test_every_documented_result_shape_is_downloaded(fake, tmp_path, shape):
    fake.result_shape = shape
    _, dest, _ = render(uniall(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0 and fake.count("download") == 1


def test_a_failed_task_is_quoted_and_clears_the_journal(fake, tmp_path):
    with pytest.raises(ProviderError, match=f"task task_.* failed: {FAIL_MESSAGE} \\(code content_policy") as info:
        render(uniall(fake), job("A storm [fail]"), tmp_path)
    assert not info.value.retryable and info.value.message.startswith("shot 'shot': uniall:")
    assert not (tmp_path / "journal" / "job.json").exists()
    assert fake.count("download") == 0


def test_429_then_success_honours_retry_after(fake, tmp_path):
    fake.fail("submit", 429, times=2, retry_after="2")
    _, dest, ctx = render(uniall(fake), job(), tmp_path)
    assert fake.count("submit") == 3 and fake.submissions == {"A lighthouse at dusk": 1}
    assert ctx.sleep.firsts[:2] == [2.0, 2.0]
    assert probe(dest).duration == 8.0


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_on_poll_are_retried_with_backoff(fake, tmp_path, status):
    fake.fail("poll", status, times=2)
    _, dest, ctx = render(uniall(fake), job(), tmp_path)
    assert fake.count("poll") == 5 and fake.count("submit") == 1 and probe(dest).duration == 8.0
    backoffs = [s for s in ctx.sleep.firsts if s != 0.01]
    assert len(backoffs) == 2 and 1 <= backoffs[0] <= 2 and 2 <= backoffs[1] <= 4


@pytest.mark.parametrize("endpoint", ["poll", "download"])  # submit: tests/test_paid_once.py
def test_a_reset_connection_is_retried(fake, tmp_path, endpoint):
    fake.reset_connection(endpoint)
    _, dest, _ = render(uniall(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0
    assert fake.submissions == {"A lighthouse at dusk": 1}


def test_slow_polls_report_progress(fake, tmp_path):
    fake.pending_polls = 6
    _, _, ctx = render(uniall(fake), job(), tmp_path)
    fractions = [f for state, f in ctx.progress.calls if state == "rendering"]
    assert fake.count("poll") == 7 and fractions == sorted(fractions) and len(set(fractions)) == 6
    assert ctx.sleep.firsts == [0.01] * 6


def test_401_fails_at_once_with_the_api_message(fake, tmp_path):
    with pytest.raises(ProviderError, match=r"HTTP 401 from POST /v1/video/generations: Invalid token") as info:
        render(uniall(fake, env={"UNIALL_API_KEY": "sk-wrong"}), job(), tmp_path)
    assert info.value.status == 401 and not info.value.retryable
    assert fake.count("submit") == 1


def test_a_truncated_download_is_retried(fake, tmp_path):
    fake.truncate(times=1)
    _, dest, _ = render(uniall(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0 and fake.count("download") == 2


def test_a_download_that_stays_truncated_fails_keeping_the_journal(fake, tmp_path):
    fake.truncate(times=10)
    ctx = render_context(tmp_path)
    with pytest.raises(ProviderError, match="gave up after 6 tries") as info:
        uniall(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert info.value.retryable and not (tmp_path / "out.mp4").exists()
    assert ctx.journal.read()["operation"]


def test_the_key_never_appears_in_messages_logs_or_the_journal(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail("poll", 503, times=1, message=f"echoing {KEY} back")
    fake.fail("poll", 400, message=f"bad request for key {KEY}")
    with pytest.raises(ProviderError) as info:
        render(uniall(fake), job(), tmp_path)
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert "***" in str(info.value) and all(KEY not in text for text in chain)
    assert KEY not in caplog.text
    assert KEY not in (tmp_path / "journal" / "job.json").read_text()


def test_the_key_is_not_sent_to_a_video_url_on_another_host(fake, tmp_path):
    fake.cdn_host = "localhost"
    _, dest, _ = render(uniall(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0
    assert "authorization" not in fake.headers("download")[0]


def test_resume_polls_the_journaled_task_without_submitting(fake, tmp_path):
    task = fake.start_task("A lighthouse at dusk")
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": task, "provider": "uniall", "submitted": "2026-01-01T00:00:00Z"})
    result = uniall(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert result.operation == task and fake.count("submit") == 0 and fake.count("poll") == 3


def test_resume_of_a_vanished_task_submits_anew(fake, tmp_path):
    task = fake.start_task("A lighthouse at dusk")
    fake.forget_tasks()
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": task, "provider": "uniall", "submitted": "2026-01-01T00:00:00Z"})
    result = uniall(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert result.operation != task and fake.count("submit") == 1


def test_missing_key_names_the_variable(fake, tmp_path):
    with pytest.raises(MissingKeyError, match="uniall needs an API key: set UNIALL_API_KEY"):
        render(uniall(fake, env={}), job(), tmp_path)
    assert fake.count("submit") == 0


def test_the_environment_overrides_the_base_url(fake, tmp_path):
    provider = uniall(fake, env={"UNIALL_API_KEY": KEY, "STORYBOARD_UNIALL_BASE_URL": fake.url},
                      base_url="http://127.0.0.1:9")
    render(provider, job(), tmp_path)
    assert fake.count("submit") == 1
    assert UniAllProvider(env={}).base_url == "https://api.uniall.ai"


def test_the_upload_credentials_are_scrubbed_too():
    settings = UniAllSettings(upload="s3://b/p", public_url="https://b/{key}", storage_options={"secret": "opt-s3cr3t"})
    provider = UniAllProvider(settings, env={"UNIALL_API_KEY": KEY, "AWS_SECRET_ACCESS_KEY": "env-s3cr3t"})
    assert set(provider.secrets()) == {KEY, "env-s3cr3t", "opt-s3cr3t"}


def test_capabilities_follow_the_model_and_the_upload_target():
    bare = UniAllProvider(env={})
    caps = bare.capabilities("veo3.1")
    assert not caps.local_media and caps.max_references == 3 and caps.audio_control and caps.seed
    assert caps.durations == {4, 6, 8} and caps.extension_resolutions == {"720p"} and caps.max_extended_seconds == 37
    assert bare.capabilities("veo3.1-fast").max_references == 0
    assert bare.capabilities("veo3.1-fast-video-1080p").resolutions == {"1080p"}
    assert bare.capabilities("veo3.1-fast-video-1080p").max_references == 0
    assert bare.capabilities("veo3.2").max_references == 3
    uploads = UniAllProvider(UniAllSettings(upload="s3://b/p", public_url="https://b/{key}"), env={})
    assert uploads.capabilities("veo3.1").local_media
    assert bare.price(job()) is None
    assert tier("veo3.1-fast", "4k") == "veo3.1-fast-video-4k"


@pytest.mark.parametrize("table, says", [
    ({"upload": "s3://b/p"}, "set both upload"),
    ({"public_url": "https://b/{key}"}, "set both upload"),
    ({"upload": "s3://b/p", "public_url": "https://b/"}, "must contain {key}"),
    ({"uplaod": "s3://b"}, "Extra inputs are not permitted"),
])
def test_the_settings_table_is_checked(table, says):
    with pytest.raises(ValidationError, match=says):
        validate_settings(UniAllSettings, table)


@pytest.mark.parametrize("body, found", [
    ({"id": "task_1", "status": "queued"}, "task_1"), ({"task_id": "t2"}, "t2"), ({"data": {"id": 3}}, "3"),
    ({"code": 0, "data": {"task_id": "t4"}}, "t4"), ({"data": "t5"}, "t5"), ({}, None), ({"data": True}, None),
])
def test_task_ids_are_read_from_every_plausible_place(body, found):
    assert task_id(body) == found


def test_progress_and_video_url_readers():
    assert task_progress({"progress": "40%"}) == 0.4 and task_progress({"progress": 150}) == 1.0
    assert task_progress({"progress": None}) is None and task_progress({"progress": "soon"}) is None
    assert video_url({"result": {"outputs": [{"url": "u"}]}}) == "u"
    assert video_url({"video_url": None, "result": None}) is None


def test_mock_transport_wrapped_poll_bodies_and_failures(tmp_path):
    polls = iter([{"code": "success", "data": {"status": "in_progress", "progress": "50%"}},
                  {"code": "success", "data": {"status": "FAILED", "fail_reason": "quota exceeded"}}])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"code": "success", "data": {"task_id": "t-1"}})
        return httpx.Response(200, json=next(polls))

    provider = UniAllProvider(env={"UNIALL_API_KEY": KEY}, client=httpx.Client(transport=httpx.MockTransport(handler)))
    ctx = render_context(tmp_path)
    with pytest.raises(ProviderError, match="task t-1 failed: quota exceeded"):
        provider.render(job(), tmp_path / "x.mp4", ctx)
    assert ("rendering", 0.5) in ctx.progress.calls


# ---- the fake itself -----------------------------------------------------------------------------


def submit_raw(fake: FakeUniAll, body) -> httpx.Response:
    return httpx.post(f"{fake.url}/v1/video/generations", json=body, headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture(scope="module")
def urls(tmp_path_factory):
    """Public URLs of two PNGs and a JPEG in a bucket of the loopback S3 server."""
    bucket, folder, found = make_bucket(moto_endpoint()), tmp_path_factory.mktemp("urls"), []
    for i, (color, fmt) in enumerate((("red", "PNG"), ("green", "PNG"), ("blue", "JPEG"))):
        _, path = image(folder, f"u{i}.img", color, fmt)
        bucket.fs.put_file(str(path), f"{bucket.bucket}/u{i}.img")
        found.append(f"{bucket.endpoint}/{bucket.bucket}/u{i}.img")
    return found


def test_the_fake_accepts_every_documented_form(fake, urls):
    base = {"model": "veo3.1-fast-video-1080p", "prompt": "p", "size": "1080p", "aspect_ratio": "16:9"}
    for extra in ({"duration": "6"}, {"duration": 8, "image": urls[0], "last_image": urls[2]},
                  {"model": "veo3.1-video-1080p", "images": urls[:2], "extra_body": {"seed": 11}}):
        response = submit_raw(fake, {**base, **extra})
        assert response.status_code == 200, response.text
    assert sum(fake.submissions.values()) == 3


@pytest.mark.parametrize("change, says", [
    ({"images": "U2"}, "2 to 3 reference image URLs"),
    ({"model": "veo3.1-fast-video-720p", "images": "U2"}, "does not support multi-image"),
    ({"last_image": "U1"}, "last_image must be used together with image"),
    ({"size": "1080p"}, "does not match model"),
    ({"duration": 5}, "duration must be 4, 6 or 8"),
    ({"resolution": "720p"}, "unknown field(s): resolution"),
    ({"extra_body": {"fps": 24}}, "extra_body takes only"),
    ({"image": "http://127.0.0.1:9/nothing.png"}, "failed to download"),
    ({"video": "U1"}, "is not an MP4 video"),
])
def test_the_fake_enforces_the_documented_rules(fake, urls, change, says):
    change = {k: (urls[:1] if v == "U2" else urls[0] if v == "U1" else v) for k, v in change.items()}
    response = submit_raw(fake, {"model": "veo3.1-video-720p", "prompt": "p", **change})
    assert response.status_code == 400 and says in response.json()["error"]["message"]
    assert fake.submissions == {}


def test_the_fake_runs_as_a_standalone_process():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.uniall_server", "--pending-polls", "0"],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        httpx.post(f"{url}/_fake/config", json={"fail": [{"endpoint": "submit", "status": 503}]})
        headers = {"Authorization": "Bearer fake-uniall-key"}
        body = {"model": "veo3.1-video-720p", "prompt": "p"}
        assert httpx.post(f"{url}/v1/video/generations", json=body, headers=headers).status_code == 503
        assert httpx.post(f"{url}/v1/video/generations", json=body, headers=headers).status_code == 200
        assert httpx.get(f"{url}/_fake/stats").json()["submissions"] == {"p": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
