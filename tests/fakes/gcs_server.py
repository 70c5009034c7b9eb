"""A loopback fake of Google Cloud Storage's JSON API: what gcsfs calls, with GCS's generations.

    with GcsFake() as gcs:                        # or the `gcs` fixture: a fresh bucket per test
        gcs.make_bucket("films")
        env = gcs.env()                           # STORAGE_EMULATOR_HOST: gcsfs talks to the fake
        gcs.objects("films")                      # {name: bytes}
        gcs.generation("films", "cache/leases/ab…/0")
        gcs.fail("upload", 503); gcs.faults.add("upload", Fault.lose_answer())

Endpoints (for faults and counts): buckets, bucket, list, info, download, upload, delete.
Every write gives the object a new generation, larger than any before (GCS uses microsecond
times). A request with `ifGenerationMatch=N` succeeds only if the object's generation is N, 0
meaning "absent", and fails with 412 otherwise; the check and the write happen under one lock,
so of many concurrent conditional creates exactly one wins, as on GCS. Uploads: multipart,
media and resumable (chunks answered 308 with the Range received). Downloads honour Range.
Listings honour prefix, delimiter, startOffset/endOffset and paginate (`page_limit` caps a page,
so a test can make gcsfs follow nextPageToken). No authentication, like any emulator.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import pytest

from tests.fakes._kit import LoopbackFake, Refusal, Reply, Request, json_reply, serve

MEDIA = "application/octet-stream"


@dataclass
class StoredObject:
    data: bytes
    generation: int
    content_type: str = MEDIA
    metadata: dict[str, str] = field(default_factory=dict)
    created: str = ""


@dataclass
class _Upload:
    """A resumable upload in progress: where it goes, on what condition, and the bytes so far."""

    bucket: str
    name: str
    condition: dict[str, list[str]]
    content_type: str
    metadata: dict[str, str]
    data: bytearray = field(default_factory=bytearray)


class GcsRefusal(Refusal):
    def __init__(self, status: int, message: str, reason: str = "invalid") -> None:
        super().__init__(status, message)
        self.reason = reason


class GcsFake(LoopbackFake):
    knobs = ("page_limit",)
    truncated = ("download",)

    def __init__(self, **kwargs: Any) -> None:
        self.page_limit = 1000
        """The most results one listing page holds (GCS: 1000)."""
        self.buckets: dict[str, dict[str, StoredObject]] = {}
        self.uploads: dict[str, _Upload] = {}
        self._generations = itertools.count(int(time.time() * 1_000_000))
        super().__init__(**kwargs)

    def clear(self) -> None:
        self.buckets = {}
        self.uploads = {}

    # ---- what tests ask --------------------------------------------------------------------

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"films-{uuid.uuid4().hex[:12]}"
        with self.lock:
            self.buckets.setdefault(name, {})
        return name

    def env(self) -> dict[str, str]:
        """The variable that points gcsfs (and Google's clients) at this fake."""
        return {"STORAGE_EMULATOR_HOST": self.url}

    def objects(self, bucket: str) -> dict[str, bytes]:
        with self.lock:
            return {name: obj.data for name, obj in sorted(self.buckets[bucket].items())}

    def generation(self, bucket: str, name: str) -> int | None:
        with self.lock:
            obj = self.buckets[bucket].get(name)
            return None if obj is None else obj.generation

    # ---- routing ---------------------------------------------------------------------------

    def resolve(self, req: Request) -> tuple[str, Any] | None:
        parts = req.path.split("/")
        if req.path.startswith("/upload/storage/v1/b/") and len(parts) == 7 and parts[6] == "o":
            if "upload_id" in req.query:
                return "upload", self._resumable_chunk if req.method in ("POST", "PUT") else self._cancel
            return ("upload", self._upload) if req.method == "POST" else None
        if req.path.startswith("/download/storage/v1/b/") and len(parts) >= 8 and req.method == "GET":
            return "download", self._download
        if not req.path.startswith("/storage/v1/b"):
            return None
        if len(parts) == 4:  # /storage/v1/b
            return "buckets", self._buckets
        if len(parts) == 5:
            return ("bucket", self._bucket) if req.method == "GET" else None
        if len(parts) == 6 and parts[5] == "o" and req.method == "GET":
            return "list", self._list
        if len(parts) >= 7 and parts[5] == "o":
            if req.method == "DELETE":
                return "delete", self._delete
            if req.method == "GET":
                media = req.query.get("alt") == ["media"]
                return ("download", self._download) if media else ("info", self._info)
        return None

    def parse(self, req: Request) -> Any:
        return req.json if req.endpoint != "upload" else {"query": {k: v[0] for k, v in req.query.items()},
                                                          "bytes": len(req.raw)}

    def refusal(self, status: int, message: str) -> Refusal:
        return GcsRefusal(status, message, {404: "notFound", 412: "conditionNotMet", 429: "rateLimitExceeded"}
                          .get(status, "backendError" if status >= 500 else "invalid"))

    def error_reply(self, exc: Refusal) -> Reply:
        reason = getattr(exc, "reason", "invalid")
        return Reply(exc.status, {"error": {"code": exc.status, "message": exc.message,
                                            "errors": [{"message": exc.message, "domain": "global",
                                                        "reason": reason}]}})

    # ---- buckets ---------------------------------------------------------------------------

    def _buckets(self, req: Request) -> Reply:
        if req.method == "POST":
            name = str((req.json or {}).get("name") or "")
            with self.lock:
                if name in self.buckets:
                    raise self.refusal(409, f"The bucket {name} already exists.")
                self.buckets[name] = {}
            return json_reply(_bucket_resource(name))
        with self.lock:
            names = sorted(self.buckets)
        return json_reply({"kind": "storage#buckets", "items": [_bucket_resource(n) for n in names]})

    def _bucket(self, req: Request) -> Reply:
        name = unquote(req.path.split("/")[4])
        with self.lock:
            if name not in self.buckets:
                raise self.refusal(404, f"The specified bucket {name} does not exist.")
        return json_reply(_bucket_resource(name))

    # ---- objects ---------------------------------------------------------------------------

    def _object_path(self, req: Request, at: int) -> tuple[str, str]:
        """(bucket, name) of /…/b/<bucket>/o/<name>, the name percent-decoded (gcsfs quotes '/')."""
        parts = req.path.split("/")
        return unquote(parts[at]), unquote("/".join(parts[at + 2:]))

    def _objects_of(self, bucket: str) -> dict[str, StoredObject]:
        found = self.buckets.get(bucket)
        if found is None:
            raise self.refusal(404, f"The specified bucket {bucket} does not exist.")
        return found

    def _live(self, bucket: str, name: str, query: dict[str, list[str]]) -> StoredObject:
        """The object, checked against the request's generation and preconditions (under the lock)."""
        obj = self._objects_of(bucket).get(name)
        wanted = query.get("generation")
        if obj is None or (wanted and int(wanted[0]) != obj.generation):
            raise self.refusal(404, f"No such object: {bucket}/{name}")
        _check_conditions(self, obj, query)
        return obj

    def _info(self, req: Request) -> Reply:
        bucket, name = self._object_path(req, 4)
        with self.lock:
            obj = self._live(bucket, name, req.query)
            return json_reply(_object_resource(bucket, name, obj))

    def _download(self, req: Request) -> Reply:
        at = 4 if req.path.startswith("/storage/") else 5
        bucket, name = self._object_path(req, at)
        with self.lock:
            obj = self._live(bucket, name, req.query)
        data, status, headers = obj.data, 200, {"x-goog-generation": str(obj.generation)}
        wanted = req.headers.get("Range")
        if wanted:
            first, last = _byte_range(wanted, len(data))
            if first >= len(data) or first > last:
                raise self.refusal(416, "The requested range cannot be satisfied.")
            data, status = data[first:last + 1], 206
            headers["Content-Range"] = f"bytes {first}-{last}/{len(obj.data)}"
        return Reply(status, data, headers, content_type=obj.content_type)

    def _delete(self, req: Request) -> Reply:
        bucket, name = self._object_path(req, 4)
        with self.lock:
            self._live(bucket, name, req.query)
            del self.buckets[bucket][name]
        return Reply(204, b"")

    def _list(self, req: Request) -> Reply:
        bucket = unquote(req.path.split("/")[4])
        query = {k: v[0] for k, v in req.query.items()}
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        start, end, after = query.get("startOffset", ""), query.get("endOffset"), query.get("pageToken", "")
        limit = min(int(query.get("maxResults") or 1000), self.page_limit)
        with self.lock:
            objects = self._objects_of(bucket)
            names = sorted(n for n in objects if n.startswith(prefix) and n >= start and (end is None or n < end))
            entries: list[tuple[str, StoredObject | None]] = []  # (name or prefix, object or None)
            for name in names:
                rest = name[len(prefix):]
                cut = rest.find(delimiter) if delimiter else -1
                key = name if cut < 0 else prefix + rest[:cut + len(delimiter)]
                if key <= after or (entries and entries[-1][0] == key):
                    continue
                entries.append((key, objects[name] if cut < 0 else None))
            page, more = entries[:limit], len(entries) > limit
            body: dict[str, Any] = {
                "kind": "storage#objects",
                "items": [_object_resource(bucket, key, obj) for key, obj in page if obj is not None],
                "prefixes": [key for key, obj in page if obj is None]}
        if more:
            body["nextPageToken"] = page[-1][0]
        return json_reply(body)

    # ---- uploads ---------------------------------------------------------------------------

    def _upload(self, req: Request) -> Reply:
        bucket = unquote(req.path.split("/")[5])
        kind = (req.query.get("uploadType") or ["media"])[0]
        if kind == "resumable":
            meta = req.json or {}
            name = str(meta.get("name") or (req.query.get("name") or [""])[0])
            with self.lock:
                self._objects_of(bucket)
                upload_id = uuid.uuid4().hex
                self.uploads[upload_id] = _Upload(bucket, name, _conditions(req.query),
                                                  req.headers.get("X-Upload-Content-Type") or MEDIA,
                                                  dict(meta.get("metadata") or {}))
            location = (f"{self.url}/upload/storage/v1/b/{quote(bucket, safe='')}/o?uploadType=resumable"
                        f"&upload_id={upload_id}")
            return Reply(200, b"", {"Location": location})
        if kind == "multipart":
            meta, data, content_type = _multipart(req)
            name = str(meta.get("name") or (req.query.get("name") or [""])[0])
            metadata = dict(meta.get("metadata") or {})
        else:
            name, data, metadata = (req.query.get("name") or [""])[0], req.raw, {}
            content_type = req.headers.get("Content-Type") or MEDIA
        if not name:
            raise self.refusal(400, "Required object name is missing.")
        return json_reply(self._store(bucket, name, data, content_type, metadata, _conditions(req.query)))

    def _resumable_chunk(self, req: Request) -> Reply:
        upload_id = req.query["upload_id"][0]
        with self.lock:
            upload = self.uploads.get(upload_id)
            if upload is None:
                raise self.refusal(404, "No such upload session.")
            span, _, total = (req.headers.get("Content-Range") or "bytes */*").removeprefix("bytes ").partition("/")
            if span != "*":
                first = int(span.split("-")[0])
                if first > len(upload.data):
                    raise self.refusal(400, f"Chunk starts at {first}, past the {len(upload.data)} bytes received.")
                del upload.data[first:]
                upload.data += req.raw
            if total == "*" or len(upload.data) < int(total):
                received = {"Range": f"bytes=0-{len(upload.data) - 1}"} if upload.data else {}
                return Reply(308, b"", received)
            del self.uploads[upload_id]
        return json_reply(self._store(upload.bucket, upload.name, bytes(upload.data), upload.content_type,
                                      upload.metadata, upload.condition))

    def _cancel(self, req: Request) -> Reply:
        with self.lock:
            self.uploads.pop(req.query["upload_id"][0], None)
        return Reply(499, b"")

    def _store(self, bucket: str, name: str, data: bytes, content_type: str, metadata: dict[str, str],
               condition: dict[str, list[str]]) -> dict[str, Any]:
        """Check the preconditions and write, atomically: the one place objects are created."""
        with self.lock:
            objects = self._objects_of(bucket)
            current = objects.get(name)
            _check_conditions(self, current, condition)
            obj = StoredObject(data, next(self._generations), content_type, metadata, _now())
            objects[name] = obj
            return _object_resource(bucket, name, obj)


# ---- the wire format ----------------------------------------------------------------------


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _bucket_resource(name: str) -> dict[str, Any]:
    return {"kind": "storage#bucket", "id": name, "name": name, "location": "US", "storageClass": "STANDARD",
            "locationType": "multi-region", "timeCreated": "2026-01-01T00:00:00.000Z"}


def _object_resource(bucket: str, name: str, obj: StoredObject) -> dict[str, Any]:
    return {"kind": "storage#object", "id": f"{bucket}/{name}/{obj.generation}", "bucket": bucket, "name": name,
            "generation": str(obj.generation), "metageneration": "1", "contentType": obj.content_type,
            "size": str(len(obj.data)), "md5Hash": base64.b64encode(hashlib.md5(obj.data).digest()).decode(),  # noqa: S324 - GCS's own field
            "timeCreated": obj.created, "updated": obj.created, "storageClass": "STANDARD",
            **({"metadata": obj.metadata} if obj.metadata else {})}


def _conditions(query: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: v for k, v in query.items() if k in ("ifGenerationMatch", "ifGenerationNotMatch")}


def _check_conditions(fake: GcsFake, obj: StoredObject | None, query: dict[str, list[str]]) -> None:
    """GCS's generation preconditions: 0 stands for "no live object"."""
    generation = 0 if obj is None else obj.generation
    match, not_match = query.get("ifGenerationMatch"), query.get("ifGenerationNotMatch")
    if (match and int(match[0]) != generation) or (not_match and int(not_match[0]) == generation):
        raise fake.refusal(412, "At least one of the pre-conditions you specified did not hold.")


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """(first, last) inclusive of 'bytes=a-b', 'bytes=a-' or 'bytes=-n'."""
    first, _, last = header.strip().removeprefix("bytes=").partition("-")
    if not first:
        return max(0, size - int(last)), size - 1
    return int(first), min(size - 1, int(last)) if last else size - 1


def _multipart(req: Request) -> tuple[dict[str, Any], bytes, str]:
    """(metadata, data, content type) of a multipart/related upload: JSON part, then media part."""
    import json

    kind = req.headers.get("Content-Type") or ""
    boundary = kind.partition("boundary=")[2].strip().strip('"').encode()
    if not boundary:
        raise Refusal(400, "multipart upload without a boundary")
    delimiter = b"--" + boundary
    raw = req.raw
    first = raw.index(delimiter)
    second = raw.index(delimiter, first + len(delimiter))
    close = raw.rindex(delimiter + b"--")
    meta_headers, meta_body = _part(raw[first + len(delimiter):second])
    media_headers, data = _part(raw[second + len(delimiter):close])
    content_type = next((line.partition(b":")[2].strip().decode() for line in media_headers.splitlines()
                         if line.lower().startswith(b"content-type:")), MEDIA)
    return json.loads(meta_body), data, content_type


def _part(chunk: bytes) -> tuple[bytes, bytes]:
    """Split one part into its headers and its body (without the line ending before the next delimiter)."""
    chunk = chunk.removeprefix(b"\r\n").removeprefix(b"\n")
    cuts = [i for i in (chunk.find(b"\r\n\r\n"), chunk.find(b"\n\n")) if i >= 0]
    cut = min(cuts)
    gap = 4 if chunk[cut:cut + 4] == b"\r\n\r\n" else 2
    body = chunk[cut + gap:]
    return chunk[:cut], body.removesuffix(b"\r\n") if body.endswith(b"\r\n") else body.removesuffix(b"\n")


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs_server() -> Any:
    """One fake GCS for the test session (buckets keep tests apart)."""
    with GcsFake() as fake:
        yield fake


@pytest.fixture
def gcs(gcs_server: GcsFake, monkeypatch: pytest.MonkeyPatch) -> GcsBucket:
    """A fresh bucket on the fake GCS, STORAGE_EMULATOR_HOST pointing at it for this test."""
    for name, value in gcs_server.env().items():
        monkeypatch.setenv(name, value)
    gcs_server.reset()  # counts, faults and knobs are the server's: each test starts from none
    return GcsBucket(gcs_server, gcs_server.make_bucket())


@dataclass
class GcsBucket:
    fake: GcsFake
    bucket: str

    def url(self, prefix: str = "") -> str:
        return f"gs://{self.bucket}/{prefix}".rstrip("/")

    def objects(self, under: str = "") -> dict[str, bytes]:
        return {name: data for name, data in self.fake.objects(self.bucket).items() if name.startswith(under)}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    serve(GcsFake(port=parser.parse_args().port))
