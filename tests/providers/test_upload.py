import hashlib
from pathlib import Path

import pytest
from PIL import Image

from storyboard.errors import ProviderError
from storyboard.providers._upload import UploadTarget, check_public_url
from tests.fakes.s3_server import S3Bucket, s3  # noqa: F401


def png(tmp_path: Path, name: str = "a.png", color: str = "red", fmt: str = "PNG") -> tuple[str, Path]:
    path = tmp_path / name
    Image.new("RGB", (32, 18), color).save(path, fmt)
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def test_publish_uploads_under_a_content_addressed_key_readable_at_the_public_url(s3: S3Bucket, tmp_path):  # noqa: F811
    digest, path = png(tmp_path)
    target = UploadTarget(s3.upload_url("films/inputs"), s3.public_url)
    url = target.publish(path, digest)

    assert url == f"{s3.endpoint}/{s3.bucket}/films/inputs/{digest}.png"
    assert s3.keys() == [f"films/inputs/{digest}.png"]
    response = s3.get(f"films/inputs/{digest}.png")
    assert response.status_code == 200 and response.content == path.read_bytes()
    assert response.headers["content-type"] == "image/png"


def test_the_digest_is_computed_and_jpeg_and_mp4_get_their_extensions(s3: S3Bucket, tmp_path):  # noqa: F811
    digest, path = png(tmp_path, "b.jpg", "blue", "JPEG")
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(32))
    target = UploadTarget(s3.upload_url(), s3.public_url)
    assert target.publish(path).endswith(f"/{digest}.jpg")
    assert target.publish(clip).endswith(f"/{hashlib.sha256(clip.read_bytes()).hexdigest()}.mp4")
    assert s3.head(f"{digest}.jpg")["ContentType"] == "image/jpeg"


def test_an_object_already_there_is_not_sent_again(s3: S3Bucket, tmp_path, monkeypatch):  # noqa: F811
    digest, path = png(tmp_path)
    UploadTarget(s3.upload_url("p"), s3.public_url).publish(path, digest)
    target = UploadTarget(s3.upload_url("p"), s3.public_url)
    fs, _ = target._filesystem()
    sent = []
    monkeypatch.setattr(fs, "put_file", lambda *a, **k: sent.append(a))
    assert target.publish(path, digest).endswith(f"/p/{digest}.png")
    assert sent == []


def test_a_stub_left_by_a_killed_upload_is_replaced(tmp_path):
    digest, path = png(tmp_path)
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / f"{digest}.png").write_bytes(b"\x89PNG half")
    target = UploadTarget(f"file://{folder}", "https://cdn.example/{name}")
    assert target.publish(path, digest) == f"https://cdn.example/{digest}.png"
    assert (folder / f"{digest}.png").read_bytes() == path.read_bytes()


def test_storage_options_reach_the_filesystem(s3: S3Bucket, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    digest, path = png(tmp_path)
    target = UploadTarget(s3.upload_url("opts"), s3.public_url, {"endpoint_url": s3.endpoint})
    target.publish(path, digest)
    assert s3.keys() == [f"opts/{digest}.png"]


def test_a_missing_bucket_fails_with_the_target_named(s3: S3Bucket, tmp_path):  # noqa: F811
    digest, path = png(tmp_path)
    target = UploadTarget("s3://no-such-bucket-here/x", "https://x/{key}", provider="uniall")
    with pytest.raises(ProviderError, match=r"uniall: uploading .*\.png to s3://no-such-bucket-here/x failed"):
        target.publish(path, digest)


def test_only_images_and_videos_are_published(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ProviderError, match="is not a PNG, JPEG or MP4"):
        UploadTarget(f"file://{tmp_path}", "https://x/{key}").publish(path)


@pytest.mark.parametrize("upload, key", [("s3://b/a/b/", "a/b/n.png"), ("s3://b", "n.png"),
                                         ("gs://bucket/x", "x/n.png")])
def test_keys_are_the_upload_path_then_the_name(upload, key):
    target = UploadTarget(upload, "https://cdn/{key}?n={name}")
    assert target.key("n.png") == key
    assert target.url("n.png") == f"https://cdn/{key}?n=n.png"


@pytest.mark.parametrize("template, says", [("https://x/", "must contain {key}"),
                                            ("https://x/{key}/{other}", "only {key} and {name}")])
def test_the_public_url_template_is_checked(template, says):
    with pytest.raises(ValueError, match=says):
        check_public_url(template)
