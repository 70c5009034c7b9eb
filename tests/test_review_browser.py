"""The review room in a real browser: headless Chromium (Debian's) driven by Selenium.

It opens the page, waits until every shot shows its candidates as <video> elements the browser
has loaded (readyState, duration), clicks candidate 2, and checks the storyboard file and the
film player. It takes a screenshot; with STORYBOARD_SCREENSHOT=1 it is the README's
(docs/review-room.png), otherwise it stays in the test's temporary folder (tests never write
into the repository unless asked).
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest

from tests.test_serve import BOARD, Running, built, write_board

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "review-room.png"


def _browser():  # noqa: ANN202 - a selenium WebDriver
    chromium = CHROMIUM if CHROMIUM.is_file() else (Path(p) if (p := shutil.which("chromium")) else None)
    driver = CHROMEDRIVER if CHROMEDRIVER.is_file() else (Path(p) if (p := shutil.which("chromedriver")) else None)
    if chromium is None or driver is None:
        pytest.skip("no Chromium or chromedriver: install them (Debian: apt-get install -y chromium chromium-driver) "
                    "to test the review room in a browser")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio",
                 "--window-size=1400,1500", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(driver)), options=options)


VIDEOS = """
return Array.from(document.querySelectorAll('figure.candidate')).map(f => {
  const v = f.querySelector('video');
  return {shot: f.dataset.shot, number: Number(f.dataset.number), picked: f.dataset.picked === 'true',
          ready: v ? v.readyState : -1, duration: v ? v.duration : null, error: v && v.error ? v.error.code : null};
});
"""


def test_pick_a_candidate_in_the_browser(tmp_path_factory: pytest.TempPathFactory) -> None:
    browser = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    board = write_board(tmp_path_factory.mktemp("browser") / "board")
    # its own cache: a pick made here must not leave test_serve's pick 2 cached (it asserts a re-run)
    running = Running(board, tmp_path_factory.mktemp("browser-cache"))
    try:
        running.wait(built, "the first build")
        browser.get(running.url + "/")
        wait = WebDriverWait(browser, 30, poll_frequency=0.2)

        def every_candidate_loaded(driver) -> list[dict] | bool:  # noqa: ANN001
            videos = driver.execute_script(VIDEOS)
            ready = len(videos) == 4 and all(v["ready"] >= 1 and v["duration"] for v in videos)
            return videos if ready else False

        videos = wait.until(every_candidate_loaded)
        assert sorted((v["shot"], v["number"]) for v in videos) == [("arrival", 1), ("arrival", 2), ("climb", 1),
                                                                   ("dawn", 1)]
        for v in videos:
            assert v["duration"] == pytest.approx(4.0, abs=0.15), v
            assert v["error"] is None
        assert [v["picked"] for v in videos if v["shot"] == "arrival"] == [True, False]
        film = browser.find_element(By.ID, "film")
        wait.until(lambda d: d.execute_script("return arguments[0].readyState", film) >= 1)
        assert browser.execute_script("return arguments[0].duration", film) == pytest.approx(12.0, abs=0.15)
        before = (film.get_attribute("data-sha"), film.get_attribute("src"), film.get_attribute("data-version"))
        prompts = [p.text for p in browser.find_elements(By.CSS_SELECTOR, ".shot .prompt")]
        assert prompts[0] == "A lighthouse on a cliff at dusk."

        browser.find_element(By.CSS_SELECTOR, 'button[data-pick="arrival:2"]').click()
        wait.until(lambda d: d.find_element(By.ID, "plan").is_displayed())
        plan = browser.find_element(By.ID, "plan").text
        assert "Picked candidate 2 of arrival" in plan
        assert "climb: to run" in plan

        wait.until(lambda d: film.get_attribute("data-sha") != before[0])
        after = (film.get_attribute("data-sha"), film.get_attribute("src"), film.get_attribute("data-version"))
        assert after[1] != before[1] and int(after[2]) > int(before[2])
        assert after[1].endswith(f"/media/{after[0]}")
        text = board.read_text()
        assert tomllib.loads(text)["shot"][0]["pick"] == 2
        assert text == BOARD.replace("takes = 2        # two candidates to choose from\n",
                                     "takes = 2        # two candidates to choose from\npick = 2\n")
        wait.until(lambda d: d.execute_script("return arguments[0].readyState", film) >= 2)  # a picture, no spinner
        picked = wait.until(lambda d: [v["picked"] for v in d.execute_script(VIDEOS) if v["shot"] == "arrival"]
                            == [False, True] and all(v["ready"] >= 1 for v in d.execute_script(VIDEOS)))
        assert picked
        assert not browser.find_element(By.ID, "error").is_displayed()
        shot_path = SCREENSHOT if os.environ.get("STORYBOARD_SCREENSHOT") == "1" else board.parent / "review-room.png"
        assert browser.save_screenshot(str(shot_path))
        assert shot_path.stat().st_size > 10_000
    finally:
        browser.quit()
        running.close()
