"""plan and build when an extension needs the provider's handle on its source clip."""

from __future__ import annotations

from storyboard.build import open_project, plan_project
from storyboard.plan import RUN, WAITS

BOARD = """
[film]
provider = "gemini"
duration = 8

[providers.gemini]
allow_retired = true

[[shot]]
id = "src"
prompt = "a wave rises"

[[shot]]
id = "ext"
extends = "src"
prompt = "the wave breaks"
"""


def _cached_source(project, handle):
    """Pretend 'src' was generated: an action entry with real objects and the given handle."""
    from storyboard.cache import cache_key
    from storyboard.job import key_components

    resolver = project.resolver()
    job, _ = resolver.job(project.board.shots["src"])
    key = cache_key(key_components(job))
    shas = {}
    for name in ("clip", "first", "last"):
        tmp = project.cache.tmp_path()
        tmp.write_bytes(name.encode())
        shas[name] = project.cache.adopt(tmp)
    project.cache.put_action(key, {"key": key, "outputs": shas, "meta": {"frames": 192}, "provider": "gemini",
                                   "handle": handle})


def test_an_expired_handle_makes_plan_regenerate_the_source(write_board, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    project = open_project(write_board(BOARD))
    _cached_source(project, {"uri": "https://x/files/a", "expires": "2020-01-01T00:00:00Z"})
    steps = {s.shot: s for s in plan_project(project)[0]}
    assert steps["src"].status == RUN
    assert "file handle expired at 2020-01-01T00:00:00Z" in steps["src"].reason
    assert "'ext' extends it" in steps["src"].reason
    assert steps["ext"].status == WAITS


def test_a_live_handle_keeps_the_source_cached(write_board, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    project = open_project(write_board(BOARD))
    _cached_source(project, {"uri": "https://x/files/a", "expires": "2999-01-01T00:00:00Z"})
    steps = {s.shot: s for s in plan_project(project)[0]}
    assert steps["src"].status == "cached"
    assert steps["ext"].status == RUN


def test_gemini_cannot_extend_another_providers_clip(write_board, capsys):
    from storyboard.errors import StoryboardFileError

    path = write_board(BOARD.replace('id = "src"\n', 'id = "src"\nprovider = "animatic"\n'))
    try:
        open_project(path)
    except StoryboardFileError as exc:
        assert "shot 'ext'" in exc.message and "gemini extends only clips it generated" in exc.message
    else:
        raise AssertionError("expected a validation error")
