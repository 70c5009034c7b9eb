"""A real S3-compatible server on loopback (moto's server mode), for the upload target's tests.

    def test_x(s3):                  # a fresh bucket that anyone may read, AWS_* set for this test
        s3.upload_url("films")       # "s3://<bucket>/films"
        s3.public_url                # "http://127.0.0.1:PORT/<bucket>/{key}"
        s3.keys(), s3.get("films/ab….png"), s3.head("films/ab….png")

One moto server serves the whole test process (started on first use, stopped at exit), since
test modules import these fixtures separately and moto takes a second to start. Each `s3`
fixture makes its own bucket, readable without credentials through a bucket policy, the
usual way to publish objects (ACLs are disabled on new AWS buckets).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

ACCESS_KEY = "AKIAFAKESTORYBOARD01"
SECRET_KEY = "fake-s3-secret-that-must-never-leak-0123"
REGION = "us-east-1"


@functools.lru_cache(maxsize=1)
def moto_endpoint() -> str:
    """Start the process's moto server on 127.0.0.1 (once) and return its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _serialise_writes()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    atexit.register(server.stop)
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def _serialise_writes() -> None:
    """Make moto's conditional PUT atomic, as S3's is: moto checks If-None-Match, then writes, and
    its threaded server could let two racing creates both pass the check (the leases' tests race)."""
    import threading

    from moto.s3.responses import S3Response

    mutex = threading.Lock()
    for name in ("put_object", "delete_object"):
        original = getattr(S3Response, name)

        def serialised(self: Any, _original: Any = original) -> Any:
            with mutex:
                return _original(self)

        setattr(S3Response, name, serialised)


def public_read_policy(bucket: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"}]})


@dataclass
class S3Bucket:
    """One bucket on the moto server, and what the tests ask of it."""

    endpoint: str
    bucket: str
    fs: Any

    def upload_url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    @property
    def public_url(self) -> str:
        return f"{self.endpoint}/{self.bucket}/{{key}}"

    def keys(self) -> list[str]:
        """Every object key in the bucket, sorted."""
        self.fs.invalidate_cache()
        return sorted(path.split("/", 1)[1] for path in self.fs.find(self.bucket))

    def get(self, key: str) -> httpx.Response:
        """An anonymous GET of `key`, as the provider's servers would fetch it."""
        return httpx.get(f"{self.endpoint}/{self.bucket}/{key}")

    def head(self, key: str) -> dict[str, Any]:
        self.fs.invalidate_cache()
        return self.fs.info(f"{self.bucket}/{key}")


def s3_env(endpoint: str) -> dict[str, str]:
    """The standard AWS variables that point boto at the moto server."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint}


def make_bucket(endpoint: str) -> S3Bucket:
    """A new bucket on the server at `endpoint`, readable by anyone."""
    import s3fs

    fs = s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=endpoint, skip_instance_cache=True)
    bucket = f"films-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.call_s3("put_bucket_policy", Bucket=bucket, Policy=public_read_policy(bucket))
    return S3Bucket(endpoint, bucket, fs)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh public-read bucket on the loopback S3 server, with the AWS_* variables set."""
    endpoint = moto_endpoint()
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return make_bucket(endpoint)
