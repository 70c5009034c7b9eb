"""Where a provider's key may go: its official hosts, loopback, or a host the user allowed.

A storyboard is untrusted input. Without this check, `[providers.gemini] base_url =
"http://anywhere"` in a file from a stranger would send the user's key to anywhere. So a URL a
storyboard sets (`base_url`, Vertex's `storage_base_url`, a Vertex `location` that shapes
the default host, UniAll's object-store `endpoint_url`) must name one of the provider's official hosts over HTTPS, or a loopback
address (127.0.0.0/8, localhost, [::1]: the fake servers, a local proxy). Anything else needs
the user's say-so from outside the file:

    STORYBOARD_<PROVIDER>_BASE_URL=...      the URL itself (it then replaces the file's)
    --allow-base-url HOST                   on the command line (repeatable), which sets
    STORYBOARD_ALLOW_BASE_URL=HOST[,HOST]   for the process; the variable works on its own too
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

ALLOW_ENV = "STORYBOARD_ALLOW_BASE_URL"


@dataclass(frozen=True)
class Destination:
    """A URL a provider sends its key to, and which setting chose it.

    Attributes:
        field: the `[providers.NAME]` key that decides the URL (`base_url`, `location`...).
        url: the URL itself.
        source: "env" (the user's environment), "board" (the storyboard) or "default".
        official: host patterns of the provider's own service; `*` stands for one DNS label.
    """

    field: str
    url: str
    source: str
    official: tuple[str, ...]

    @property
    def where(self) -> str:
        """host[:port] the key goes to, as `storyboard plan` shows it."""
        if (own := own_default(self)) is not None:
            return own
        import httpx  # lazily: a plan of a board that keeps a provider's own host never needs it

        try:
            url = httpx.URL(self.url)
        except httpx.InvalidURL:
            return self.url
        return f"{url.host}:{url.port}" if url.port else url.host

    @property
    def note(self) -> str:
        """Why a host that is not the service's own may get the key ('' for the service's own)."""
        if own_default(self) is not None:
            return ""
        import httpx  # lazily: a plan of a board that keeps a provider's own host never needs it

        try:
            host = httpx.URL(self.url).host
        except httpx.InvalidURL:
            return ""
        if any(matches(host, p) for p in self.official):
            return ""
        if is_loopback(host):
            return " (this machine)"
        return " (your STORYBOARD_*_BASE_URL)" if self.source == "env" else " (allowed by you)"


def own_default(dest: Destination) -> str | None:
    """host[:port] of a provider's own default URL (https, an official host), else None.

    A default is the provider's constant, not the board's or the user's, so reading it with
    urllib (not httpx, which reads every URL the board or the user chose, as it will send to
    it) is safe, and spares a plan that keeps the defaults importing httpx (~0.1 s).
    """
    if dest.source != "default":
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(dest.url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or "@" in parts.netloc or not any(matches(host, p) for p in dest.official):
        return None
    return f"{host}:{port}" if port else host


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine: localhost, 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":  # not *.localhost: some resolvers ask DNS for those
        return True
    import ipaddress  # ≈ 2 ms: a plan of a board that keeps each provider's own host never asks

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def matches(host: str, pattern: str) -> bool:
    """Whether `host` fits `pattern`, where `*` is exactly one DNS label (letters, digits, '-')."""
    regex = "".join("[a-z0-9-]+" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern.lower()))
    return re.fullmatch(regex, host.lower().rstrip(".")) is not None


def allowed_hosts(env: Mapping[str, str]) -> frozenset[str]:
    """The hosts the user allowed outside the storyboard (STORYBOARD_ALLOW_BASE_URL, comma-separated)."""
    hosts = set()
    for entry in (e.strip() for e in env.get(ALLOW_ENV, "").split(",")):
        if "://" in entry:  # a whole URL given: its host is what is meant
            import httpx  # lazily: only a whole URL needs reading

            try:
                entry = httpx.URL(entry).host
            except httpx.InvalidURL:
                continue
        if entry:
            hosts.add(entry.lower().strip("[]"))
    return frozenset(hosts)


def refusal(dest: Destination, provider: str, allowed: Iterable[str]) -> str | None:
    """Why `dest` may not receive `provider`'s key, or None when it may."""
    if dest.source == "env" or own_default(dest) is not None:
        return None
    import httpx  # lazily: a plan of a board that keeps a provider's own host never needs it

    try:
        url = httpx.URL(dest.url)
    except httpx.InvalidURL as exc:
        return f"{dest.url!r} is not a valid URL ({exc})"
    host = url.host.lower()
    if url.scheme not in ("http", "https") or not host:
        return f"{dest.url!r} is not an http(s) URL with a host"
    if url.userinfo:
        return f"{dest.url!r} carries a user name or password; give the host alone"
    if is_loopback(host) or host.strip("[]") in {h.lower() for h in allowed}:
        return None
    official = ", ".join(dest.official)
    if any(matches(host, p) for p in dest.official):
        if url.scheme == "https":
            return None
        return f"{dest.url!r} would send the {provider} key unencrypted; use https://{host}"
    return (f"{dest.url!r} would receive the {provider} API key, but {host} is not {provider}'s own host "
            f"({official}) or this machine. If you trust it, pass --allow-base-url {host} (or set "
            f"STORYBOARD_{provider.upper()}_BASE_URL yourself)")


def check_destinations(providers: Mapping[str, object]) -> tuple[str, str, str] | None:
    """(provider, field, why) for the first key destination refused, or None when all may receive it.

    Providers without `destinations()` (the animatic, plugins) send no key storyboard knows of.
    """
    for name, impl in providers.items():
        destinations = getattr(impl, "destinations", None)
        if destinations is None:
            continue
        allowed = allowed_hosts(getattr(impl, "env", os.environ))
        for dest in destinations():
            why = refusal(dest, name, allowed)
            if why is not None:
                return name, dest.field, why
    return None


def refuse_foreign_hosts(providers: Mapping[str, object], error: Callable[[str], Exception]) -> None:
    """Raise `error(message)` (the loader's StoryboardFileError) for a refused key destination."""
    if (refused := check_destinations(providers)) is not None:
        name, field, why = refused
        raise error(f"[providers.{name}] field '{field}': {why}")
