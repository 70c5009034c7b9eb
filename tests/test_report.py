"""`make_report`: the HTML contact sheet of a real animatic build, checked as text and in Chromium."""

from __future__ import annotations

import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storyboard.build import build, open_project
from storyboard.executor import BuildReport, Outcome, ShotReport
from storyboard.media import probe
from storyboard.report import Cut, compare_frames, make_report

BOARD = """
[film]
title = "Kite & Harbour"
output = "build/kite.mp4"
duration = 4
seed = 3

[[shot]]
id = "hill"
prompt = "A red kite over a green hill"

[[shot]]
id = "clouds"
continues = "hill"
prompt = "The kite climbs into the clouds"

[[shot]]
id = "harbour"
prompt = "A harbour at night, rain on the <glass>"
seed = 9
"""

PROMPTS = ["A red kite over a green hill", "The kite climbs into the clouds",
           "A harbour at night, rain on the <glass>"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    board = root / "storyboard.toml"
    board.write_text(BOARD)
    report = build(open_project(board))
    assert report.count(Outcome.RENDERED) == 3 and report.film is not None
    return board


@pytest.fixture(scope="module")
def page(built: Path) -> tuple[Path, str]:
    out = make_report(open_project(built))
    return out, out.read_text()


def cuts(text: str) -> dict[tuple[str, str], str]:
    found = re.findall(r'<div class="cut ([^"]*)" data-before="([^"]+)" data-after="([^"]+)"(.*?)</div>', text, re.S)
    return {(before, after): f"{cls} {rest}" for cls, before, after, rest in found}


def test_report_sits_beside_the_film_and_links_it(built, page):
    out, text = page
    assert out == built.parent / "build" / "kite.report.html"
    assert '<video id="film-video" controls preload="metadata" src="kite.mp4"' in text
    assert "Kite &amp; Harbour" in text and "<code>kite.mp4</code> · 12.00 s" in text and " MB · current." in text


def test_report_shows_every_shot_with_its_frames_and_settings(page):
    _, text = page
    for prompt in PROMPTS:
        assert html.escape(prompt, quote=False) in text
    assert "<glass>" not in text
    assert len(re.findall(r'<img src="data:image/jpeg;base64,[A-Za-z0-9+/=]+"', text)) == 6
    for shot in ("hill", "clouds", "harbour"):
        assert f'data-shot="{shot}" data-status="cached"' in text
    assert "<dt>seed</dt><dd>9</dd>" in text and "$0.00" in text and "animatic-veo-3.1" in text
    assert "not built yet" not in text


def test_handed_off_cut_is_identical_and_hard_cut_is_flagged(page):
    _, text = page
    joins = cuts(text)
    assert list(joins) == [("hill", "clouds"), ("clouds", "harbour")]
    handoff, hard = joins["hill", "clouds"], joins["clouds", "harbour"]
    assert handoff.startswith("cut-ok") and "identical" in handoff
    assert float(re.search(r'data-ssim="([\d.]+)"', handoff).group(1)) > 0.95
    assert hard.startswith("cut-jump") and "identical" not in hard and "⚠ jump" in hard
    psnr = float(re.search(r'data-psnr="([\d.]+)"', hard).group(1))
    assert 0 < psnr < 25 and f"{psnr} dB" in hard


def test_compare_frames_scores_identical_as_infinite_and_sees_colour_and_structure(tmp_path):
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(2)]
    paths = {}
    for name, pixels in {"a": noise[0], "b": noise[0].copy(), "c": noise[1],
                         "blue": np.full((36, 64, 3), (40, 120, 200), np.uint8),
                         "red": np.full((36, 64, 3), (240, 20, 10), np.uint8)}.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(paths[name])
    assert compare_frames(paths["a"], paths["b"]) == (float("inf"), 1.0)
    psnr, ssim = compare_frames(paths["a"], paths["c"])
    assert psnr < 12 and ssim < 0.2
    psnr, ssim = compare_frames(paths["blue"], paths["red"])
    assert psnr < 10 and ssim > 0.9
    assert Cut("x", "y", "cut", False, psnr, ssim).verdict == "jump"
    assert Cut("x", "y", "cut", True, psnr, ssim).verdict == "bad"
    assert Cut("x", "y", "cut", True, 44.0, 0.99).verdict == "ok"


def test_unbuilt_and_changed_shots_show_placeholders_and_stale_frames(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built.parent, copy)
    board = copy / "storyboard.toml"
    board.write_text(BOARD.replace("rain on the <glass>", "fog over the water"))
    text = make_report(open_project(board)).read_text()
    assert 'data-shot="harbour" data-status="to run"' in text and "prompt changed" in text
    assert "previous take, out of date" in text
    assert "continuity: not built yet" in cuts(text)["clouds", "harbour"]
    assert "out of date: shots changed since it was stitched" in text

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "storyboard.toml").write_text(BOARD)
    project = open_project(fresh / "storyboard.toml")
    failed = BuildReport({"hill": ShotReport("hill", Outcome.FAILED, error="quota exhausted")})
    text = make_report(project, fresh / "r.html", build=failed).read_text()
    assert "<img" not in text and "<video" not in text
    assert text.count(">not built yet</div>") == 6
    assert 'data-shot="hill" data-status="failed"' in text and "quota exhausted" in text
    assert "kite.mp4: not built yet" in text
    assert "<dt>cost</dt><dd>est. $0.00</dd>" in text and "to spend <b>$0.00</b>" in text


# ---- in a real browser --------------------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

PROBE = """<script>
window.addEventListener('load', function () {
  var out = {images: []};
  document.querySelectorAll('img').forEach(function (img) { out.images.push(img.complete ? img.naturalWidth : -1); });
  var video = document.querySelector('video');
  function done(value) {
    out.video = value;
    var pre = document.createElement('pre');
    pre.id = 'probe';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  if (video.readyState >= 1) { done(video.duration); return; }
  video.addEventListener('loadedmetadata', function () { done(video.duration); });
  video.addEventListener('error', function () { done('error ' + (video.error && video.error.code)); });
});
</script>"""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve():
    servers = []

    def start(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 functools.partial(_QuietHandler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_report_renders_in_headless_chromium(built, page, serve, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium: install it (Debian: apt-get install -y chromium) to render the report in a browser")
    out, text = page
    (out.parent / "probe.html").write_text(text.replace("</body>", PROBE + "</body>"))
    base = serve(out.parent)
    screenshot = tmp_path / "report.png"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=10000", "--hide-scrollbars",
         "--window-size=1280,2000", f"--screenshot={screenshot}", "--dump-dom", f"{base}/probe.html"],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout)
    assert found, f"the probe did not report (exit {result.returncode}): {result.stderr[-2000:]}"
    seen = json.loads(html.unescape(found.group(1)))
    assert len(seen["images"]) == 6 and all(width > 0 for width in seen["images"]), seen
    assert isinstance(seen["video"], int | float), seen
    assert abs(seen["video"] - probe(built.parent / "build" / "kite.mp4").duration) < 0.1
    with Image.open(screenshot) as shot:
        assert shot.size == (1280, 2000)
        assert len(shot.convert("L").getcolors(1 << 16) or ()) > 50


def test_a_continuation_that_does_not_continue_is_a_bad_join(write_board, fake_provider):
    board = write_board("""
        [film]
        provider = "fake"
        duration = 4

        [[shot]]
        id = "a"
        prompt = "a lighthouse at dusk"

        [[shot]]
        id = "b"
        continues = "a"
        prompt = "the lamp comes on"
    """)
    project = open_project(board)
    build(project, only=["b"])
    text = make_report(project).read_text()
    join = cuts(text)["a", "b"]
    assert join.startswith("cut-bad") and "⚠ bad join: 'b' does not start on the frame 'a' handed it" in join
    assert "identical" not in join
    assert "<dt>cost</dt><dd>$2.00</dd>" in text and "spent <b>$4.00</b>" in text
    assert "build.mp4" not in text and "film.mp4: not built yet" in text
