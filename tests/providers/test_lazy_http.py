"""Loading and planning a board that keeps its providers' own hosts never imports httpx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from storyboard.providers import BUILTIN, provider_class
from storyboard.providers._hosts import Destination, own_default, refusal

ROOT = Path(__file__).resolve().parents[2]

PLAN = """
import json, sys
from storyboard.load import load
from storyboard.providers import provider_class
board = load(sys.argv[1])
hosts = {}
for name in sorted({shot.provider for shot in board.shots.values()}):
    cls = provider_class(name)
    hosts[name] = cls(board.providers.get(name) or cls.Settings(), env={}).key_hosts()
print(json.dumps({"hosts": hosts, "httpx": "httpx" in sys.modules}))
"""


def test_loading_a_board_of_http_providers_imports_no_httpx(tmp_path):
    path = tmp_path / "storyboard.toml"
    path.write_text('[film]\nprovider = "vertex"\nduration = 4\n\n[providers.vertex]\nproject = "p"\n\n'
                    '[providers.gemini]\nallow_retired = true\n\n'
                    '[[shot]]\nid = "a"\nprompt = "a pier"\n\n[[shot]]\nid = "b"\nprovider = "gemini"\n'
                    'prompt = "a harbour"\n\n[[shot]]\nid = "c"\nprovider = "uniall"\nprompt = "a boat"\n')
    done = subprocess.run([sys.executable, "-c", PLAN, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["hosts"] == {"gemini": ["generativelanguage.googleapis.com"], "uniall": ["api.uniall.ai"],
                             "vertex": ["us-central1-aiplatform.googleapis.com"]}
    assert seen["httpx"] is False


@pytest.mark.parametrize("name", sorted(set(BUILTIN) - {"animatic"}))
def test_a_providers_own_default_reads_as_httpx_reads_it(name):
    cls = provider_class(name)
    impl = cls(cls.Settings(), env={})
    for dest in impl.destinations():
        assert dest.source == "default", dest
        url = httpx.URL(dest.url)
        assert own_default(dest) == (f"{url.host}:{url.port}" if url.port else url.host)
        assert refusal(dest, name, ()) is None and dest.note == ""


@pytest.mark.parametrize("url", ["http://generativelanguage.googleapis.com", "https://evil.example",
                                 "https://user:pw@generativelanguage.googleapis.com",
                                 "https://generativelanguage.googleapis.com.evil.example", "https://[::1"])
def test_anything_else_is_left_to_httpx(url):
    dest = Destination("base_url", url, "default", ("generativelanguage.googleapis.com",))
    assert own_default(dest) is None
    assert refusal(dest, "gemini", ()) is not None  # read by httpx, and refused as before
    board = Destination("base_url", "https://generativelanguage.googleapis.com", "board", dest.official)
    assert own_default(board) is None and refusal(board, "gemini", ()) is None
