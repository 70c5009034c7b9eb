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


def test_each_shot_plays_its_own_clip_from_its_start_in_the_film(built, page):
    out, text = page
    project = open_project(built)
    lock = project.lock.shots
    players = dict(re.findall(r'<section class="shot[^"]*" id="shot-([a-z]+)".*?<video class="clip"[^>]* src="([^"]+)"',
                              text, re.S))
    assert set(players) == {"hill", "clouds", "harbour"}
    for shot, src in players.items():
        assert (out.parent / src).resolve() == project.cache.object_path(lock[shot]["clip"]).resolve()
    numbers = re.findall(r'<span class="num" title="position in the film">#(\d+)</span><h3>([a-z]+)</h3>'
                         r'<a class="start" href="#film" data-seek="([\d.]+)"[^>]*>at ([\d:.]+)</a>', text)
    assert numbers == [("1", "hill", "0.000", "0:00.00"), ("2", "clouds", "4.000", "0:04.00"),
                       ("3", "harbour", "8.000", "0:08.00")]


def test_handed_off_cut_is_identical_and_plain_cut_is_not_flagged(page):
    _, text = page
    joins = cuts(text)
    assert list(joins) == [("hill", "clouds"), ("clouds", "harbour")]
    handoff, hard = joins["hill", "clouds"], joins["clouds", "harbour"]
    assert handoff.startswith("cut-ok") and "identical" in handoff
    assert float(re.search(r'data-ssim="([\d.]+)"', handoff).group(1)) > 0.95
    # a plain cut to an unrelated shot is scored, not flagged: it is what an edit is made of
    assert hard.startswith("cut-cut") and "identical" not in hard and "⚠" not in hard
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
    assert Cut("x", "y", "cut", False, psnr, ssim).verdict == "cut"
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
  var videos = Array.prototype.slice.call(document.querySelectorAll('video')), left = videos.length;
  out.videos = {};
  function done(video, value) {
    out.videos[video.id || video.getAttribute('aria-label')] = value;
    if (--left) return;
    var pre = document.createElement('pre');
    pre.id = 'probe';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  videos.forEach(function (video) {
    if (video.readyState >= 1) { done(video, video.duration); return; }
    video.addEventListener('loadedmetadata', function () { done(video, video.duration); });
    video.addEventListener('error', function () { done(video, 'error ' + (video.error && video.error.code)); });
    video.load();
  });
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
    base = serve(built.parent) + "/build"  # the board's folder: the page links the clips in its cache
    screenshot = tmp_path / "report.png"
    for attempt in range(3):  # a starved machine can end the virtual-time budget before the media loads
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / f'profile{attempt}'}",
             "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=10000", "--hide-scrollbars",
             "--window-size=1280,2000", f"--screenshot={screenshot}", "--dump-dom", f"{base}/probe.html"],
            capture_output=True, text=True, timeout=120,
        )
        found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout)
        if found:
            break
    assert found, f"the probe did not report (exit {result.returncode}): {result.stderr[-2000:]}"
    seen = json.loads(html.unescape(found.group(1)))
    assert len(seen["images"]) == 6 and all(width > 0 for width in seen["images"]), seen
    project = open_project(built)
    expected = {"film-video": probe(built.parent / "build" / "kite.mp4").duration}
    for shot in ("hill", "clouds", "harbour"):
        expected[f"the clip of {shot}"] = probe(project.cache.object_path(project.lock.shots[shot]["clip"])).duration
    assert set(seen["videos"]) == set(expected), seen
    for name, duration in expected.items():
        assert isinstance(seen["videos"][name], int | float), seen
        assert abs(seen["videos"][name] - duration) < 0.1, (name, seen)
    with Image.open(screenshot) as shot:
        assert shot.size == (1280, 2000)
        assert len(shot.convert("L").getcolors(1 << 16) or ()) > 50


def test_a_continuation_that_does_not_continue_is_a_bad_join(write_board, fake_provider):
    board = write_board("""
        [film]
        provider = "fake"
        resolution = "360p"  # a quarter of 720p's stitch
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


def test_shots_not_in_the_film_keep_the_numbering_and_starts_follow_the_transitions(write_board, fake_provider):
    board = write_board("""
        [film]
        provider = "fake"
        resolution = "360p"  # a quarter of 720p's stitch
        duration = 4

        [[shot]]
        id = "a"
        prompt = "a lighthouse at dusk"

        [[shot]]
        id = "b"
        prompt = "the stairs"
        duration = 8

        [[shot]]
        id = "c"
        extends = "b"
        prompt = "the lamp room"
        duration = 8

        [[shot]]
        id = "d"
        prompt = "dawn"

        [edit]
        transition = { kind = "crossfade", duration = 0.5 }
    """)
    project = open_project(board)
    report = build(project)
    text = make_report(project).read_text()
    film = re.findall(r'<span class="num" title="position in the film">#(\d+)</span><h3>([a-z]+)</h3>'
                      r'<a class="start" href="#film" data-seek="([\d.]+)"', text)
    assert [(n, s) for n, s, _ in film] == [("1", "a"), ("2", "c"), ("3", "d")]
    # each join overlaps the clips by the crossfade: 12 frames at 24 fps
    c_length = probe(project.cache.object_path(project.lock.shots["c"]["clip"])).duration
    assert [float(t) for _, _, t in film] == pytest.approx([0, 4 - 0.5, 4 - 0.5 + c_length - 0.5], abs=1e-3)
    assert float(film[-1][2]) + 4 == pytest.approx(report.film.duration, abs=0.05)
    others = text.split("<h2>Shots not in the film</h2>")[1]
    assert 'id="shot-b"' in others and "<h3>b</h3>" in others and 'class="num"' not in others
    assert "not in the film: 'c' extends it" in html.unescape(others)


def test_starts_follow_the_timeline_trims_titles_and_holds(write_board, fake_provider):
    board = write_board("""
        [film]
        provider = "fake"
        resolution = "360p"  # a quarter of 720p's stitch
        duration = 4

        [[shot]]
        id = "a"
        prompt = "a lighthouse at dusk"

        [[shot]]
        id = "b"
        prompt = "the stairs"

        [[edit.clip]]
        shot = "a"
        in = 1.0
        hold = 0.5
        transition = { kind = "crossfade", duration = 0.5 }

        [[edit.clip]]
        shot = "b"
        out = 3.0

        [[edit.title]]
        text = "The Keeper"
        before = "a"
        duration = 2.0
    """)
    project = open_project(board)
    report = build(project)
    text = make_report(project).read_text()
    film = re.findall(r'<h3>([a-z]+)</h3><a class="start" href="#film" data-seek="([\d.]+)"', text)
    # the title (2 s) comes first; a plays 1-4 s then holds 0.5 s; the crossfade pulls b 0.5 s earlier
    assert [(s, float(t)) for s, t in film] == [("a", pytest.approx(2.0)), ("b", pytest.approx(2.0 + 3.5 - 0.5))]
    assert float(film[-1][1]) + 3.0 == pytest.approx(report.film.duration, abs=0.05)
