"""Publishing local inputs for URL-only providers: an fsspec upload target and a public URL.

A provider that takes images and clips only as URLs (UniAll) needs each local input
somewhere its servers can fetch it. The `[providers.NAME]` table names the place:

    upload = "s3://films/storyboard"                       # any fsspec URL: s3://, gs://, az://, file://
    public_url = "https://films.s3.amazonaws.com/{key}"     # how the world reads what was uploaded

Each input goes up once under a content-addressed name, `<sha256>.<ext>` (ext from its
bytes: png, jpg, mp4), below the upload URL. `{key}` in `public_url` is that name with the
upload URL's path in front (`storyboard/<sha256>.png` above: the object key in the bucket);
`{name}` is the bare name, for a CDN whose root is the prefix itself. An object that already
exists with the same size is not sent again, so a rebuild or a shared reference uploads nothing.

Credentials and endpoints are fsspec's: for S3 the standard AWS chain (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_ENDPOINT_URL for R2/MinIO/...).
`storage_options` in the table is passed to the filesystem as is, for what the environment
cannot say (e.g. `s3_additional_kwargs = {ACL = "public-read"}` for a bucket that uses ACLs).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from storyboard.cache import file_sha256
from storyboard.errors import ProviderError
from storyboard.sniff import sniff

EXTENSIONS = {"png": "png", "jpeg": "jpg", "mp4": "mp4"}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "mp4": "video/mp4"}
_CONTENT_TYPE_ARG = {"s3": "ContentType", "s3a": "ContentType", "gs": "content_type", "gcs": "content_type"}
"""The keyword each object store's `put_file` takes for the Content-Type (others get none)."""


LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
_LOCAL_WRAPPERS = frozenset({"zip", "tar", "filecache", "simplecache", "blockcache", "cached", "dir", "reference"})
"""fsspec protocols that write on this machine or wrap another filesystem: never taken from a storyboard."""


def local_target_refusal(upload: str, root: Path) -> str | None:
    """Why an `upload` target may not receive copies of the inputs, or None.

    A storyboard is untrusted: a local target (`file://…` or a path) must resolve, symlinks
    followed, inside the board's folder `root`, or a board could write files anywhere the user
    can. Object-store URLs (s3://, gs://, az://…) are the user's explicit choice and pass.
    """
    if "::" in upload:
        return "chained fsspec URLs (`a::b`) are not accepted; name the object store itself, e.g. s3://bucket/prefix"
    scheme = urlsplit(upload).scheme.lower() if "://" in upload else ""
    if scheme in _LOCAL_WRAPPERS:
        return f"{scheme}:// writes on this machine; name an object store (s3://, gs://, az://) or a file:// folder"
    if scheme not in LOCAL_PROTOCOLS:
        return None
    parts = urlsplit(upload)
    if scheme and parts.netloc not in ("", "localhost"):
        return f"a file:// URL names a folder on this machine (file:///path), not host '{parts.netloc}'"
    path = Path(unquote(parts.path) if scheme else upload).expanduser()
    where = (path if path.is_absolute() else Path.cwd() / path).resolve()
    home = root.resolve()
    if where != home and home not in where.parents:
        return (f"{upload} resolves to {where}, outside the storyboard's folder {home}: a local upload target "
                f"must be a folder inside it (e.g. file://{home / 'uploads'}), or use an object store "
                "(s3://, gs://, az://)")
    return None


def check_public_url(template: str) -> str:
    """`template` if it names the object with `{key}` or `{name}`; ValueError otherwise."""
    if "{key}" not in template and "{name}" not in template:
        raise ValueError("public_url must contain {key} (or {name}), where the uploaded object's key goes, "
                         'e.g. "https://my-bucket.s3.amazonaws.com/{key}"')
    try:
        template.format(key="k", name="n")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"public_url may use only {{key}} and {{name}} as placeholders ({exc})") from None
    return template


class UploadTarget:
    """Where URL-only providers' inputs are published, and the URL each one gets.

    Args:
        upload: an fsspec URL, the folder objects go into (`s3://bucket/prefix`).
        public_url: a template with `{key}` (prefix/name) or `{name}` (sha256.ext).
        storage_options: keyword arguments for the fsspec filesystem.
        provider: the provider's name, for error messages.
    """

    def __init__(self, upload: str, public_url: str, storage_options: Mapping[str, Any] | None = None,
                 provider: str = "upload") -> None:
        self.upload = upload.rstrip("/")
        self.public_url = check_public_url(public_url)
        self.storage_options = dict(storage_options or {})
        self.provider = provider
        parts = urlsplit(self.upload)
        self.protocol = parts.scheme or "file"
        self.prefix = parts.path.strip("/")
        self._fs: Any = None
        self._root = ""
        self._lock = threading.Lock()

    def _filesystem(self) -> tuple[Any, str]:
        with self._lock:
            if self._fs is None:
                import fsspec

                try:
                    # one filesystem per target: fsspec's instance cache would outlive changed credentials
                    self._fs, self._root = fsspec.core.url_to_fs(self.upload, skip_instance_cache=True,
                                                                 **self.storage_options)
                except ImportError as exc:
                    raise ProviderError(f"{self.provider}: the upload target {self.upload} needs a package that is "
                                        f"not installed: pip install 'storyboard[s3]' (or the fsspec backend for "
                                        "its scheme)", provider=self.provider) from exc
                except ValueError as exc:
                    raise ProviderError(f"{self.provider}: cannot open the upload target {self.upload}: {exc}",
                                        provider=self.provider) from exc
            return self._fs, self._root

    def key(self, name: str) -> str:
        """The object's key: the upload URL's path, then `name`."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def url(self, name: str) -> str:
        """The public URL of the object called `name`."""
        return self.public_url.format(key=self.key(name), name=name)

    def publish(self, path: Path, digest: str | None = None) -> str:
        """Upload `path` unless its object is already there; return its public URL.

        Raises:
            ProviderError: the file is not a PNG, JPEG or MP4, or the upload failed (the
                filesystem's own message quoted; `retryable` for network faults).
        """
        kind = sniff(path)
        ext = EXTENSIONS.get(kind or "")
        if ext is None:
            raise ProviderError(f"{self.provider}: input {path.name} is not a PNG, JPEG or MP4, so it cannot be "
                                "published", provider=self.provider)
        name = f"{digest or file_sha256(path)}.{ext}"
        fs, root = self._filesystem()
        target = f"{root.rstrip('/')}/{name}"
        try:
            if not self._present(fs, target, path.stat().st_size):
                keyword = _CONTENT_TYPE_ARG.get(self.protocol)
                fs.put_file(str(path), target, **({keyword: CONTENT_TYPES[ext]} if keyword else {}))
        except ProviderError:
            raise
        except Exception as exc:  # fsspec backends raise their own families (botocore, aiohttp, OSError)
            retryable = isinstance(exc, ConnectionError | TimeoutError) or "connect" in type(exc).__name__.lower()
            raise ProviderError(f"{self.provider}: uploading {name} to {self.upload} failed: {type(exc).__name__}: "
                                f"{exc}", provider=self.provider, retryable=retryable) from exc
        return self.url(name)

    @staticmethod
    def _present(fs: Any, target: str, size: int) -> bool:
        """Whether `target` exists whole (a killed upload to a plain folder may have left a stub)."""
        try:
            info = fs.info(target)
        except FileNotFoundError:
            return False
        return info.get("size") == size
