import hashlib
import logging
import random
from pathlib import Path

import httpx
import pytest
from PIL import Image

from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import RenderJob
from storyboard.media import probe
from storyboard.providers import ProviderSettings
from storyboard.providers.cometapi import CometApiProvider
from tests.fakes import render_context
from tests.fakes.cometapi_server import FakeCometApi, cometapi_fake, cometapi_server  # noqa: F401
from tests.fakes.uniall_server import FAIL_MESSAGE

KEY = "sk-comet-FAKE-distinctive-key-0123456789"
OPEN: list[CometApiProvider] = []


@pytest.fixture(autouse=True)
def close_providers():
    yield
    while OPEN:
        OPEN.pop().close()


@pytest.fixture
def fake(cometapi_fake: FakeCometApi) -> FakeCometApi:  # noqa: F811
    cometapi_fake.api_key = KEY
    yield cometapi_fake
    cometapi_fake.api_key = "fake-cometapi-key"


def comet(fake: FakeCometApi, env: dict[str, str] | None = None, **settings) -> CometApiProvider:
    settings.setdefault("base_url", fake.url)
    settings.setdefault("poll_interval", 0.01)
    provider = CometApiProvider(ProviderSettings(**settings), env={"COMETAPI_API_KEY": KEY} if env is None else env,
                                rng=random.Random(0))
    OPEN.append(provider)
    return provider


def job(prompt: str = "A lighthouse at dusk", **fields) -> RenderJob:
    return RenderJob(provider="cometapi", model=fields.pop("model", "veo3.1"), prompt=prompt, **fields)


def image(tmp_path: Path, name: str, color: str, fmt: str = "PNG") -> tuple[str, Path]:
    path = tmp_path / name
    Image.new("RGB", (32, 18), color).save(path, fmt)
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def render(provider, the_job, tmp_path, **ctx):
    context = render_context(tmp_path, **ctx)
    dest = tmp_path / f"{the_job.prompt[:8]}-{len(list(tmp_path.iterdir()))}.mp4"
    return provider.render(the_job, dest, context), dest, context


def test_text_to_video_end_to_end(fake, tmp_path):
    result, dest, ctx = render(comet(fake), job(), tmp_path)

    info = probe(dest)
    assert (info.duration, info.width, info.height, info.has_audio) == (8.0, 256, 144, True)
    assert result.operation.startswith("task_") and result.cost.amount == pytest.approx(0.40)
    assert result.cost.unit == "USD"
    assert [fake.count(e) for e in ("submit", "poll", "download", "content")] == [1, 3, 1, 0]
    body = fake.bodies("submit")[0]
    assert body["fields"] == {"prompt": "A lighthouse at dusk", "model": "veo3.1", "size": "16x9"}
    assert body["files"] == []
    headers = fake.headers("submit")[0]
    assert headers["authorization"] == f"Bearer {KEY}" and headers["content-type"].startswith("multipart/form-data")
    assert ctx.progress.firsts[0] == "submitted" and ctx.progress.calls[-1] == ("downloading", 1.0)


@pytest.mark.parametrize("frames", [1, 2])
def test_first_and_last_frames_are_input_reference_files_in_order(fake, tmp_path, frames):
    first, first_path = image(tmp_path, "a.png", "red")
    last, last_path = image(tmp_path, "b.jpg", "blue", "JPEG")
    the_job = job(aspect_ratio="9:16", first_frame=first, last_frame=last if frames == 2 else None)
    _, dest, _ = render(comet(fake), the_job, tmp_path, inputs={first: first_path, last: last_path})

    body = fake.bodies("submit")[0]
    assert body["fields"]["size"] == "9x16"
    expected = [{"name": "input_reference", "filename": "first.png", "content_type": "image/png", "sha256": first,
                 "size": first_path.stat().st_size},
                {"name": "input_reference", "filename": "last.jpg", "content_type": "image/jpeg", "sha256": last,
                 "size": last_path.stat().st_size}]
    assert body["files"] == expected[:frames]
    assert (probe(dest).width, probe(dest).height) == (144, 256)


def test_without_a_video_url_the_content_route_is_downloaded_with_the_key(fake, tmp_path):
    fake.video_url = False
    _, dest, _ = render(comet(fake), job(model="veo3.1-pro"), tmp_path)
    assert probe(dest).duration == 8.0
    assert fake.count("content") == 1 and fake.count("download") == 0
    assert fake.headers("content")[0]["authorization"] == f"Bearer {KEY}"


def test_a_failed_task_is_quoted_and_clears_the_journal(fake, tmp_path):
    with pytest.raises(ProviderError, match=f"failed: {FAIL_MESSAGE} \\(code generation_failed\\)") as info:
        render(comet(fake), job("A storm [fail]"), tmp_path)
    assert not info.value.retryable
    assert not (tmp_path / "journal" / "job.json").exists()


def test_429_then_success_honours_retry_after(fake, tmp_path):
    fake.fail("submit", 429, times=2, retry_after="3")
    _, dest, ctx = render(comet(fake), job(), tmp_path)
    assert fake.count("submit") == 3 and fake.submissions == {"A lighthouse at dusk": 1}
    assert ctx.sleep.firsts[:2] == [3.0, 3.0] and probe(dest).duration == 8.0


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(fake, tmp_path, status):
    fake.fail("poll", status, times=2)
    fake.fail("submit", 503, times=1)  # a create is retried only after 408/429/503 (tests/test_paid_once.py)
    _, dest, _ = render(comet(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0
    assert fake.count("submit") == 2 and fake.count("poll") == 5 and fake.submissions == {"A lighthouse at dusk": 1}


@pytest.mark.parametrize("endpoint", ["poll", "download", "content"])  # submit: tests/test_paid_once.py
def test_a_reset_connection_is_retried(fake, tmp_path, endpoint):
    fake.video_url = endpoint != "content"
    fake.reset_connection(endpoint)
    _, dest, _ = render(comet(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0 and fake.count(endpoint) == (4 if endpoint == "poll" else 2)


def test_slow_polls_report_progress(fake, tmp_path):
    fake.pending_polls = 5
    _, _, ctx = render(comet(fake), job(), tmp_path)
    fractions = [f for state, f in ctx.progress.calls if state == "rendering"]
    assert fake.count("poll") == 6 and fractions == sorted(fractions) and fractions[0] == pytest.approx(1 / 6, 0.1)


def test_401_fails_at_once(fake, tmp_path):
    with pytest.raises(ProviderError, match=r"HTTP 401 from POST /v1/videos: Invalid token") as info:
        render(comet(fake, env={"COMETAPI_API_KEY": "sk-wrong"}), job(), tmp_path)
    assert info.value.status == 401 and fake.count("submit") == 1


@pytest.mark.parametrize("video_url", [True, False])
def test_a_truncated_download_is_retried(fake, tmp_path, video_url):
    fake.video_url = video_url
    fake.truncate(times=1)
    _, dest, _ = render(comet(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0 and fake.count("download" if video_url else "content") == 2


def test_the_key_never_appears_in_messages_logs_or_the_journal(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail("poll", 503, message=f"echoing {KEY}")
    fake.fail("poll", 403, message=f"forbidden for {KEY}")
    with pytest.raises(ProviderError) as info:
        render(comet(fake), job(), tmp_path)
    assert KEY not in str(info.value) and "***" in str(info.value) and KEY not in caplog.text
    assert KEY not in (tmp_path / "journal" / "job.json").read_text()


def test_resume_polls_the_journaled_task_without_submitting(fake, tmp_path):
    task = fake.start_task("A lighthouse at dusk", model="veo3.1")
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": task, "provider": "cometapi", "submitted": "2026-01-01T00:00:00Z"})
    result = comet(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert result.operation == task and fake.count("submit") == 0


def test_missing_key_and_base_url_override(fake, tmp_path):
    with pytest.raises(MissingKeyError, match="set COMETAPI_API_KEY"):
        render(comet(fake, env={}), job(), tmp_path)
    provider = comet(fake, env={"COMETAPI_API_KEY": KEY, "STORYBOARD_COMETAPI_BASE_URL": fake.url},
                     base_url="http://127.0.0.1:9")
    render(provider, job(), tmp_path)
    assert fake.count("submit") == 1
    assert CometApiProvider(env={}).base_url == "https://api.cometapi.com"


def test_capabilities_say_what_the_aliases_cannot_do():
    provider = CometApiProvider(env={})
    caps = provider.capabilities("veo3.1")
    assert caps.durations == {8} and caps.resolutions == {"720p"} and caps.aspect_ratios == {"16:9", "9:16"}
    assert caps.max_references == 0 and not caps.extension and not caps.audio_control
    assert not caps.seed and not caps.negative_prompt and caps.first_frame and caps.last_frame and caps.local_media
    assert provider.capabilities("veo3.1-4K").resolutions == {"4k"}
    assert provider.capabilities("veo3.1-pro").resolutions == {"720p"}
    assert provider.price(job(model="veo3.1-pro")).amount == pytest.approx(2.0)
    assert provider.price(job(model="veo3-fast")) is None


# ---- the fake itself -----------------------------------------------------------------------------


def test_the_fake_accepts_the_bare_key_and_rejects_undocumented_fields(fake):
    ok = httpx.post(f"{fake.url}/v1/videos", files=[("prompt", (None, "p")), ("model", (None, "veo3.1"))],
                    headers={"Authorization": KEY})
    assert ok.status_code == 200 and ok.json()["model"] == "veo_3_1" and ok.json()["status"] == "queued"
    bad = httpx.post(f"{fake.url}/v1/videos", files=[("prompt", (None, "p")), ("seconds", (None, "4"))],
                     headers={"Authorization": f"Bearer {KEY}"})
    assert bad.status_code == 400 and "unknown parameter(s): seconds" in bad.json()["error"]["message"]
    png = b"\x89PNG\r\n\x1a\n" + bytes(8)
    three = [("prompt", (None, "p"))] + [("input_reference", (f"{i}.png", png, "image/png")) for i in range(3)]
    assert httpx.post(f"{fake.url}/v1/videos", files=three, headers={"Authorization": KEY}).status_code == 400
    assert httpx.post(f"{fake.url}/v1/videos", data={"prompt": "p"}, headers={"Authorization": KEY}).status_code == 400
    assert fake.submissions == {"p": 1}
