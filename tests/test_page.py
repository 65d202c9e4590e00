"""The page at ``/`` in a real browser (Debian's Chromium, headless, driven through its
ChromeDriver): an inspector picks tiles and sees each with its mask drawn over it."""

import shutil
import tempfile

import pytest
import requests
from PIL import Image

from conftest import gray, running_server, unavailable, write_png

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# the probe's flags: no sandbox as root, and no background traffic (this machine has no network)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        unavailable("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


RED_PIXELS = """
const canvas = document.querySelector('figure.result[data-name="' + arguments[0] + '"] canvas');
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let red = 0;
for (let i = 0; i < data.length; i += 4) { if (data[i] > 200 && data[i + 1] < 140 && data[i + 2] < 140) red++; }
return [canvas.width, canvas.height, red];
"""


def test_a_dropped_tile_is_shown_with_its_mask_its_decision_and_the_model(browser, shipped_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    tile = gray(96, 128, seed=3)
    tile[30:60, 40:90] = 250
    defect, clean = write_png(tmp_path / "defect.png", tile), write_png(tmp_path / "clean.png", gray(72, 64, seed=5) // 4)
    with running_server("--model", str(shipped_model)) as url:
        served = {path.name: requests.post(f"{url}/predict", files={"file": path.open("rb")}, timeout=60).json() for path in (defect, clean)}
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda d: "loading" not in d.find_element(By.ID, "model").text)
        assert served["defect.png"]["model"]["arm"] in browser.find_element(By.ID, "model").text
        browser.find_element(By.ID, "files").send_keys(f"{defect}\n{clean}")
        WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "figure.result[data-state=done]")) == 2)
        for path in (defect, clean):
            figure = browser.find_element(By.CSS_SELECTOR, f'figure.result[data-name="{path.name}"]')
            answer = served[path.name]
            assert figure.get_attribute("data-has-defect") == str(answer["has_defect"]).lower()
            assert ("no defect" in figure.text) != answer["has_defect"]
            width, height, red = browser.execute_script(RED_PIXELS, path.name)
            assert (width, height) == Image.open(path).size
            assert (red > 0) == answer["has_defect"] and red <= answer["defect_pixels"]
    assert served["defect.png"]["has_defect"], "the bright patch is a defect to the tiny model: the drawn mask is checked"


def test_a_refused_file_shows_the_servers_sentence(browser, shipped_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    notes = tmp_path / "notes.png"
    notes.write_bytes(b"not an image")
    with running_server("--model", str(shipped_model)) as url:
        browser.get(url)
        browser.find_element(By.ID, "files").send_keys(str(notes))
        figure = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, 'figure.result[data-state=error]'))
        assert "notes.png: not a readable image" in figure.text
