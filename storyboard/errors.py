"""The StoryboardError family: every failure a user can cause or a provider can report.

    StoryboardError                 exit 2 unless noted
    ├── StoryboardFileError         the file: TOML syntax, unknown keys, bad values, rules
    │   └── TemplateError           a prompt template the sandbox refuses (load adds file, shot, field)
    ├── GraphError                  unknown references, cycles
    ├── MissingKeyError             a provider's API key is not set
    ├── MediaError                  ffmpeg missing or failing, undecodable media   (exit 1)
    │   └── StitchError             the film could not be stitched                 (exit 1)
    ├── ProviderError               a provider refused or failed a job             (exit 1)
    ├── CacheError                  the cache cannot be written                    (exit 1)
    ├── LockHeldError               another build holds the board's lock           (exit 1)
    └── BuildFailed                 one or more shots failed                       (exit 1)
"""

from __future__ import annotations

from collections.abc import Iterable


class StoryboardError(Exception):
    """Base of every error storyboard reports without a traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        if not message:
            raise ValueError("a StoryboardError needs a message")
        super().__init__(message)
        self.message = message


class StoryboardFileError(StoryboardError):
    """The storyboard file is invalid: names the file, the line, the shot and the field."""

    line: int | None = None
    """The line of the file the problem is on, when known: orders a list of problems."""


class TemplateError(StoryboardFileError):
    """A prompt template is invalid or breaks the sandbox's bounds; says what, not where."""


class GraphError(StoryboardFileError):
    """The shots do not form a valid graph (unknown shot, cycle)."""


class MissingKeyError(StoryboardError):
    """A provider needs an API key that is not in the environment."""


class MediaError(StoryboardError):
    """ffmpeg is missing or failed, or a media file cannot be decoded."""

    exit_code = 1


class StitchError(MediaError):
    """The clips could not be stitched into the film."""


class ProviderError(StoryboardError):
    """A provider rejected or failed a job; carries the API's own message."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class CacheError(StoryboardError):
    """The cache could not be read or written (disk full, read-only folder)."""

    exit_code = 1


class LockHeldError(StoryboardError):
    """Another build holds the lock on this board."""

    exit_code = 1


class BuildFailed(StoryboardError):
    """One or more shots failed; the report says which."""

    exit_code = 1


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""

