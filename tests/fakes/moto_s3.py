"""An S3-compatible server on loopback (moto's server mode), for the remote cache's tests.

    with MotoS3() as s3:                  # or the `moto_server` (session) / `s3_bucket` fixtures
        s3.endpoint                       # http://127.0.0.1:PORT
        bucket = s3.bucket()              # a fresh, empty bucket
        bucket.url                        # s3://<name>/cache, the remote URL to give storyboard
        bucket.storage_options            # {"client_kwargs": {"endpoint_url": …}}
        bucket.put("objects/ab/ab…", b"…"); bucket.get(…); bucket.keys()   # relative to the prefix

    python -m tests.fakes.moto_s3 --port 5000     # serve until Ctrl-C, to try a remote by hand

`s3_bucket` also sets test credentials, AWS_DEFAULT_REGION and AWS_ENDPOINT_URL in the
environment and hides ~/.aws, so a client built from the environment alone reaches the server.
"""

from __future__ import annotations

import argparse
import functools
import logging
import uuid
from dataclasses import dataclass
from typing import Any

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class Bucket:
    """One bucket on the fake server; keys are relative to `prefix`."""

    name: str
    endpoint: str
    prefix: str = "cache"

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"client_kwargs": {"endpoint_url": self.endpoint}}

    def client(self) -> Any:
        """A boto3 client of its own (not the code under test's s3fs), made once per endpoint."""
        return _client(self.endpoint)

    def keys(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=f"{self.prefix}/")
        return sorted(obj["Key"][len(self.prefix) + 1:] for page in pages for obj in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=self.name, Key=f"{self.prefix}/{key}", Body=data)

    def delete(self, key: str) -> None:
        self.client().delete_object(Bucket=self.name, Key=f"{self.prefix}/{key}")


@functools.lru_cache(maxsize=None)
def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


class MotoS3:
    """moto's S3 in a thread on 127.0.0.1 and an ephemeral port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)

    def __enter__(self) -> MotoS3:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def bucket(self, prefix: str = "cache") -> Bucket:
        """Create a fresh bucket; moto keeps state per process, so each test gets its own name."""
        bucket = Bucket(f"sb-{uuid.uuid4().hex[:16]}", self.endpoint, prefix)
        bucket.client().create_bucket(Bucket=bucket.name)
        return bucket


try:
    import pytest
except ImportError:  # the standalone server does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def moto_server() -> Any:
        """One S3 server for the whole session."""
        with MotoS3() as s3:
            yield s3

    @pytest.fixture
    def s3_bucket(moto_server: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Bucket:
        """A fresh bucket, with the environment pointing every S3 client at the fake server."""
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
        return moto_server.bucket()


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C; print the endpoint first."""
    import threading

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket", default="storyboard", help="create this bucket at start")
    args = parser.parse_args(argv)
    with MotoS3(args.host, args.port) as s3:
        Bucket(args.bucket, s3.endpoint).client().create_bucket(Bucket=args.bucket)
        print(f"{s3.endpoint}  (AWS_ENDPOINT_URL={s3.endpoint} STORYBOARD_REMOTE=s3://{args.bucket}/cache)",
              flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
