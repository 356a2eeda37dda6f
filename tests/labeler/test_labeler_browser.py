"""The page in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

The app runs under uvicorn on 127.0.0.1 (a free port) in a thread of this test and is stopped by it.
An annotator enters a name, gets a prompt, ranks with the keyboard (a tie included) and one drag and
drop, submits, undoes, re-submits; the test checks the database, the export and the dataset page.
Screenshots land in tests/labeler/artifacts/ (git-ignored).
"""
from __future__ import annotations

import json
import random
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from labeler.app import LabelerConfig, create_app
from labeler.export import export_labels
from labeler.generation import SamplingParams

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"
MARKUP = '<img src=x onerror="document.title=\'pwned\'">'

selenium = pytest.importorskip("selenium", reason="selenium is not installed: run `make browser-deps`")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("chromium or chromedriver is missing: run `make browser-deps` (apt-get install chromium "
                "chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def candidates(prompt, sampling):
    endings = ["很好看，强烈推荐给大家！", "还行吧，中规中矩。", "剧情拖沓，浪费时间。", MARKUP]
    return [prompt + e for e in endings[:sampling.k]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(store):
    import uvicorn

    config = LabelerConfig(sampling=SamplingParams(k=4), model_name="models/base", model_version="3f9c2a1b7d4e")
    app = create_app(store, candidates, ["这部电影很"], config, seed=0)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)
    assert not thread.is_alive()


@pytest.fixture
def browser(tmp_path, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver or browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def board(driver) -> dict[str, list[str]]:
    """Badge letters per tier row: {"-1": [...], "0": [...], ...}."""
    return {row.get_attribute("data-tier"): [b.text for b in row.find_elements(By.CSS_SELECTOR, ".badge")]
            for row in driver.find_elements(By.CSS_SELECTOR, "#board .tier")}


def press(driver, *keys):
    for key in keys:
        driver.switch_to.active_element.send_keys(key)


DRAG = """
const card = document.querySelector('#board .card[data-id="' + arguments[0] + '"]');
const row = document.querySelector('#board .tier[data-tier="' + arguments[1] + '"]');
const data = new DataTransfer();
card.dispatchEvent(new DragEvent('dragstart', {bubbles: true, dataTransfer: data}));
row.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: data}));
row.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: data}));
card.dispatchEvent(new DragEvent('dragend', {bubbles: true, dataTransfer: data}));
"""


def test_rank_submit_undo_in_chromium(server, browser, store, tmp_path):
    wait = WebDriverWait(browser, 20)
    browser.get(server + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    title = browser.title
    name = browser.find_element(By.ID, "annotator")
    name.send_keys("小王")
    browser.find_element(By.ID, "seed").send_keys("abc")
    browser.find_element(By.ID, "typed-prompt").send_keys("质量", Keys.ENTER)
    wait.until(lambda d: "error" in d.find_element(By.ID, "message").get_attribute("class"))
    assert "seed 'abc'" in browser.find_element(By.ID, "message").text  # the server's 422 detail is shown
    assert [r["reason"] for r in store.rejections()] == ["invalid_seed"]
    browser.find_element(By.ID, "seed").clear()
    browser.find_element(By.ID, "typed-prompt").clear()
    name.send_keys(Keys.ENTER)  # Enter in the name field asks for a pool prompt
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#board .card")) == 4)
    assert browser.find_element(By.ID, "prompt").text == "这部电影很"
    assert "seed" in browser.find_element(By.ID, "meta").text

    # the first card has focus; a digit puts it in that tier and moves to the next unranked card
    press(browser, "1", "2", "2")  # A best; B and C tied in tier 2
    browser.execute_script(DRAG, 3, 2)  # D dragged to tier 3
    assert board(browser) == {"-1": [], "0": ["A"], "1": ["B", "C"], "2": ["D"], "3": []}
    cards = browser.find_elements(By.CSS_SELECTOR, "#board .card .text")
    assert cards[3].text == "这部电影很" + MARKUP  # markup is shown as text ...
    assert browser.find_elements(By.CSS_SELECTOR, "#board img") == [] and browser.title == title  # ... never run
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")  # test output, never committed
    browser.save_screenshot(str(ARTIFACTS / "labeler-ranked.png"))

    press(browser, Keys.ENTER)
    wait.until(lambda d: "Saved" in d.find_element(By.ID, "message").text
               or len(store.labels()) == 1)
    wait.until(lambda d: len(store.labels()) == 1)
    texts = candidates("这部电影很", SamplingParams(k=4))
    [label] = store.labels()
    assert label.annotator == "小王" and label.tiers == [[texts[0]], [texts[1], texts[2]], [texts[3]]]
    wait.until(lambda d: "1 labelled by you today" in d.find_element(By.ID, "progress").text)

    # undo brings the ranking back; re-rank (C best alone) and submit again
    wait.until(lambda d: "Rank the candidates" in d.find_element(By.ID, "message").text)  # the next task is shown
    browser.find_element(By.TAG_NAME, "body").send_keys("u")
    wait.until(lambda d: "Undid" in d.find_element(By.ID, "message").text)
    assert board(browser) == {"-1": [], "0": ["A"], "1": ["B", "C"], "2": ["D"], "3": []}
    browser.find_element(By.CSS_SELECTOR, '#board .card[data-id="2"]').click()
    press(browser, Keys.SHIFT + Keys.ARROW_UP, Keys.SHIFT + Keys.ARROW_UP)  # C: tier 2 -> tier 1 -> unranked
    assert board(browser)["-1"] == ["C"]
    press(browser, "1")  # C tied with A
    press(browser, Keys.ENTER)
    wait.until(lambda d: len(store.labels()) == 1 and store.labels()[0].tiers[0] == [texts[0], texts[2]])
    assert [l.status for l in store.labels(None)] == ["undone", "accepted"]

    out = tmp_path / "human.jsonl"
    export_labels(store, out)
    [row] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["tiers"] == [[texts[0], texts[2]], [texts[1]], [texts[3]]]
    assert row["annotator"] == "小王" and row["source"] == "human"

    # a second annotator ranks the same candidates (as --overlap serves them): agreement appears
    repeat = store.overlap_task("老李", random.Random(0))
    order = {text: i for i, text in enumerate(repeat.candidates)}
    store.submit(repeat.id, "老李", [[order[texts[0]]], [order[texts[1]], order[texts[2]]], [order[texts[3]]]])

    browser.get(server + "/dataset")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#labels tbody tr"))
    agreement = browser.find_element(By.ID, "agreement").text
    assert "小王" in agreement and "老李" in agreement and "0.667" in agreement and "0.800" in agreement  # 4 of 6 pairs agree; tau-b 4/5
    assert "invalid_seed" in browser.find_element(By.ID, "rejected").text
    assert MARKUP in browser.find_element(By.ID, "labels").text
    assert browser.find_elements(By.CSS_SELECTOR, "td img") == [] and browser.title != "pwned"
    browser.save_screenshot(str(ARTIFACTS / "labeler-dataset.png"))
    print(f"screenshots: {ARTIFACTS / 'labeler-ranked.png'}, {ARTIFACTS / 'labeler-dataset.png'}")
