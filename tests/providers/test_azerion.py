import base64
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
from storyboard.providers.azerion import AzerionProvider, AzerionSettings
from tests.fakes import render_context
from tests.fakes.azerion_server import BLOCKED, FakeAzerion, azerion_fake, azerion_server  # noqa: F401
from tests.fakes.google_server import clip

KEY = "az-FAKE-distinctive-key-0123456789"
OPEN: list[AzerionProvider] = []


@pytest.fixture(autouse=True)
def close_providers():
    yield
    while OPEN:
        OPEN.pop().close()


@pytest.fixture
def fake(azerion_fake: FakeAzerion) -> FakeAzerion:  # noqa: F811
    azerion_fake.api_key = KEY
    yield azerion_fake
    azerion_fake.api_key = "az-fake"


def azerion(fake: FakeAzerion, env: dict[str, str] | None = None, **settings) -> AzerionProvider:
    settings.setdefault("base_url", fake.url)
    provider = AzerionProvider(AzerionSettings(**settings), env={"AZERION_API_KEY": KEY} if env is None else env,
                               rng=random.Random(0))
    OPEN.append(provider)
    return provider


def job(prompt: str = "A detective in a neon alley", **fields) -> RenderJob:
    return RenderJob(provider="azerion", model="google-veo-3-1", prompt=prompt, **fields)


def image(tmp_path: Path, name: str, color: str, fmt: str = "PNG") -> tuple[str, Path]:
    path = tmp_path / name
    Image.new("RGB", (32, 18), color).save(path, fmt)
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def render(provider, the_job, tmp_path, **ctx):
    context = render_context(tmp_path, **ctx)
    dest = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.mp4"
    return provider.render(the_job, dest, context), dest, context


def test_text_to_video_answers_inline_base64(fake, tmp_path):
    result, dest, ctx = render(azerion(fake), job(seed=7, negative_prompt="blur"), tmp_path)

    info = probe(dest)
    assert (info.duration, info.width, info.height, info.has_audio) == (8.0, 1280, 720, True)
    assert result.cost is None and result.operation is None and result.handle is None
    assert fake.bodies("generate") == [{"model": "google-veo-3-1", "prompt": "A detective in a neon alley", "n": 1,
                                        "generate_audio": True, "output_format": "base64", "duration": 8,
                                        "resolution": "720p", "aspect_ratio": "16:9", "negative_prompt": "blur",
                                        "seed": 7}]
    entry = ctx.journal.read()  # the executor clears it once the clip is cached
    assert entry["sync"] is True and entry["provider"] == "azerion" and entry["sent"].endswith("Z")
    assert ctx.progress.firsts == ["submitted", "rendering"]


def test_url_output_is_downloaded(fake, tmp_path):
    _, dest, ctx = render(azerion(fake, output_format="url"), job(duration=4), tmp_path)
    assert probe(dest).duration == 4.0
    assert fake.bodies("generate")[0]["output_format"] == "url" and fake.count("download") == 1
    assert ctx.progress.calls[-1] == ("downloading", 1.0)


def test_images_go_inline_and_references_are_subjects(fake, tmp_path):
    first, first_path = image(tmp_path, "a.png", "red")
    last, last_path = image(tmp_path, "b.jpg", "blue", "JPEG")
    render(azerion(fake), job(duration=6, first_frame=first, last_frame=last), tmp_path,
           inputs={first: first_path, last: last_path})
    body = fake.bodies("generate")[0]
    assert body["image"] == {"mime_type": "image/png",
                             "base_64_encoded": base64.b64encode(first_path.read_bytes()).decode()}
    assert body["last_frame"]["mime_type"] == "image/jpeg"

    refs = [image(tmp_path, f"r{i}.png", c) for i, c in enumerate(("red", "green", "blue"))]
    render(azerion(fake), job(references=tuple(d for d, _ in refs)), tmp_path, inputs=dict(refs), journal="refs")
    sent = fake.bodies("generate")[1]["reference_images"]
    assert [r["reference_type"] for r in sent] == ["subject"] * 3
    assert [base64.b64decode(r["image"]["base_64_encoded"]) for r in sent] == [p.read_bytes() for _, p in refs]


def test_extension_sends_the_source_clip_and_returns_seven_more_seconds(fake, tmp_path):
    provider = azerion(fake)
    _, source, _ = render(provider, job("The keeper climbs"), tmp_path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    _, dest, _ = render(provider, job("Lightning flashes", extends=digest), tmp_path, inputs={digest: source},
                        journal="ext")
    body = fake.bodies("generate")[1]
    assert base64.b64decode(body["video"]["base_64_encoded"]) == source.read_bytes()
    assert body["video"]["mime_type"] == "video/mp4"
    assert not {"duration", "resolution", "aspect_ratio"} & body.keys()
    assert probe(dest).duration == 15.0


def test_a_safety_block_quotes_the_envelope_and_clears_the_journal(fake, tmp_path):
    with pytest.raises(ProviderError) as info:
        render(azerion(fake), job("A storm [blocked]"), tmp_path)
    err = info.value
    assert BLOCKED in err.message and "code content_policy_violation" in err.message and "param prompt" in err.message
    assert err.status == 400 and not err.retryable and err.message.startswith("shot 'shot': azerion: HTTP 400")
    assert not (tmp_path / "journal" / "job.json").exists() and fake.count("generate") == 1


def test_an_answer_without_videos_fails(fake, tmp_path):
    with pytest.raises(ProviderError, match="the answer holds no video"):
        render(azerion(fake), job("A storm [empty]"), tmp_path)
    assert not (tmp_path / "journal" / "job.json").exists()


def test_429_then_success_honours_retry_after(fake, tmp_path):
    fake.fail("generate", 429, times=2, retry_after="3")
    _, _, ctx = render(azerion(fake), job(), tmp_path)
    assert fake.count("generate") == 3 and ctx.sleep.firsts == [3.0, 3.0]
    assert fake.submissions == {"A detective in a neon alley": 1}


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retried(fake, tmp_path, status):
    fake.fail("generate", status, times=2)
    _, dest, ctx = render(azerion(fake), job(), tmp_path)
    assert fake.count("generate") == 3 and len(ctx.sleep.firsts) == 2 and probe(dest).duration == 8.0


def test_a_connection_cut_mid_request_is_not_resent(fake, tmp_path):
    fake.reset_connection("generate")
    with pytest.raises(ProviderError, match="may have been charged, so it is not sent again") as info:
        render(azerion(fake), job(), tmp_path)
    assert fake.count("generate") == 1 and info.value.status is None
    assert render_context(tmp_path).journal.read()["sync"] is True  # the next build warns before resending


def test_a_read_timeout_is_not_resent(fake, tmp_path):
    fake.delay = 0.5
    with pytest.raises(ProviderError, match=r"ReadTimeout.*raise `timeout` in \[providers.azerion\] \(now 0.1 s\)"):
        render(azerion(fake, timeout=0.1), job(), tmp_path)
    assert fake.count("generate") == 1


def test_a_killed_build_is_warned_about_and_sent_again(fake, tmp_path, caplog):
    ctx = render_context(tmp_path)
    ctx.journal.write({"sync": True, "provider": "azerion", "sent": "2026-01-01T00:00:00Z"})
    azerion(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert "request sent 2026-01-01T00:00:00Z" in caplog.text and "may have been charged" in caplog.text
    assert ctx.progress.firsts[0] == "resending" and fake.count("generate") == 1


@pytest.mark.parametrize("endpoint_fault", ["reset", "truncate"])
def test_a_broken_url_download_is_retried(fake, tmp_path, endpoint_fault):
    if endpoint_fault == "reset":
        fake.reset_connection("download")
    else:
        fake.truncate()
    _, dest, _ = render(azerion(fake, output_format="url"), job(), tmp_path)
    assert probe(dest).duration == 8.0 and fake.count("download") == 2 and fake.count("generate") == 1


def test_401_quotes_the_envelope(fake, tmp_path):
    with pytest.raises(ProviderError, match=r"HTTP 401 .*Invalid API key provided. \(type authentication_error, "
                                            r"code invalid_api_key\)") as info:
        render(azerion(fake, env={"AZERION_API_KEY": "az-wrong"}), job(), tmp_path)
    assert info.value.status == 401 and fake.count("generate") == 1


def test_the_key_never_appears_in_messages_logs_or_the_journal(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail("generate", 503, times=1, message=f"echoing {KEY} back")
    fake.fail("generate", 400, message=f"bad request for key {KEY}")
    with pytest.raises(ProviderError) as info:
        render(azerion(fake), job(), tmp_path)
    assert "***" in str(info.value) and KEY not in str(info.value) and KEY not in caplog.text
    render(azerion(fake), job(), tmp_path, journal="ok")
    assert KEY not in (tmp_path / "journal" / "ok.json").read_text()


def test_missing_key_base_url_override_and_timeout(fake, tmp_path):
    with pytest.raises(MissingKeyError, match="set AZERION_API_KEY"):
        render(azerion(fake, env={}), job(), tmp_path)
    assert fake.total() == 0
    provider = azerion(fake, env={"AZERION_API_KEY": KEY, "STORYBOARD_AZERION_BASE_URL": fake.url},
                       base_url="http://127.0.0.1:9")
    render(provider, job(), tmp_path)
    assert fake.count("generate") == 1
    default = AzerionProvider(env={})
    assert default.base_url == "https://api.azerion.ai" and default.client.timeout.read == 600.0
    default.close()


def test_capabilities_and_price():
    provider = AzerionProvider(env={})
    caps = provider.capabilities("google-veo-3-1")
    assert not caps.resumable and caps.extension and caps.resolutions == {"720p", "1080p"}
    assert caps.max_prompt_chars == 4000 and caps.max_extended_seconds == 37 and caps.audio_control
    assert provider.price(job()) is None


def test_mock_transport_reads_either_answer_form(tmp_path):
    data = base64.b64encode(clip(4, (256, 144)).read_bytes()).decode()
    answers = iter([{"videos": [{"base_64_encoded": data}]}, {"videos": [{"url": "http://cdn.test/v.mp4"}]}])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            assert "Authorization" not in request.headers  # the key stays with the API's origin
            return httpx.Response(200, content=base64.b64decode(data))
        return httpx.Response(200, json=next(answers))

    provider = AzerionProvider(env={"AZERION_API_KEY": KEY}, client=httpx.Client(transport=httpx.MockTransport(handler)))
    for name in ("a", "b"):
        provider.render(job(duration=4), tmp_path / f"{name}.mp4", render_context(tmp_path, journal=name))
        assert probe(tmp_path / f"{name}.mp4").duration == 4.0


def generate_raw(fake: FakeAzerion, body) -> httpx.Response:
    return httpx.post(f"{fake.url}/v1/videos/generation", json=body, headers={"Authorization": f"Bearer {KEY}"})


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()


@pytest.mark.parametrize("extra, param", [
    ({"durationSeconds": 8}, "durationSeconds"),
    ({"resolution": "4k"}, "resolution"),
    ({"image": {"mime_type": "image/png", "url": "https://x/a.png", "base_64_encoded": PNG}}, "image"),
    ({"last_frame": {"mime_type": "image/png", "base_64_encoded": PNG}}, "last_frame"),
    ({"reference_images": [{"image": {"mime_type": "image/png", "base_64_encoded": PNG}, "reference_type": "style"}]},
     "reference_images[0]"),
    ({"video": {"mime_type": "video/mp4", "base_64_encoded": base64.b64encode(b"....ftyp").decode()}}, "video"),
])
def test_the_fake_enforces_the_documented_shape(fake, extra, param):
    response = generate_raw(fake, {"model": "google-veo-3-1", "prompt": "p", **extra})
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == param and error["status_code"] == 400
    assert "p" not in fake.submissions  # an earlier test's delayed request may still land here


def test_the_fake_accepts_the_documented_url_form(fake):
    body = {"model": "google-veo-3-1", "prompt": "p", "duration": 4, "output_format": "url",
            "image": {"mime_type": "image/jpeg", "url": "https://example.com/first.jpg"}}
    assert generate_raw(fake, body).json()["videos"][0]["url"].startswith(fake.url)


def test_the_fake_runs_as_a_standalone_process():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.azerion_server"], cwd=root, stdout=subprocess.PIPE,
                            text=True)
    try:
        url = proc.stdout.readline().strip()
        httpx.post(f"{url}/_fake/config", json={"fail": [{"endpoint": "generate", "status": 503}]})
        body, headers = {"model": "google-veo-3-1", "prompt": "p", "duration": 4}, {"Authorization": "Bearer az-fake"}
        assert httpx.post(f"{url}/v1/videos/generation", json=body, headers=headers).status_code == 503
        assert httpx.post(f"{url}/v1/videos/generation", json=body, headers=headers, timeout=30).status_code == 200
        assert httpx.get(f"{url}/_fake/stats").json()["submissions"] == {"p": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
