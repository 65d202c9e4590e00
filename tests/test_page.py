"""The page at ``/`` in a real browser (Debian's Chromium, headless, driven through its
ChromeDriver): an inspector picks tiles and sees each with its mask drawn over it."""

import base64
import io
import json
import shutil
import tempfile

import numpy as np
import pytest
import requests
from PIL import Image

from conftest import gray, running_server, unavailable, write_png
from defectseg.data.images import read_image

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


@pytest.fixture(scope="module")
def flagging_model(shipped_model, tmp_path_factory):
    """The shipped tiny model with a decision that flags every pixel (pixel threshold and image
    gate 0: a sigmoid is never 0, so no decision sits near its threshold): the page is under test
    here, not the tiny model, which may flag nothing after two epochs on 30 images."""
    folder = tmp_path_factory.mktemp("flagging") / "model"
    shutil.copytree(shipped_model, folder)
    decision = json.loads((folder / "threshold.json").read_text())
    (folder / "threshold.json").write_text(json.dumps({**decision, "threshold": 0.0, "image_threshold": 0.0}))
    return folder


RED_PIXELS = """
const canvas = document.querySelector('figure.result[data-name="' + arguments[0] + '"] canvas');
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let red = 0;
for (let i = 0; i < data.length; i += 4) { if (data[i] - data[i + 1] > 100 && data[i + 1] === data[i + 2]) red++; }
return [canvas.width, canvas.height, red];
"""


def test_a_dropped_tile_is_shown_with_its_mask_its_decision_and_the_model(browser, flagging_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    tile = gray(96, 128, seed=3)
    tile[30:60, 40:90] = 250
    defect, clean = write_png(tmp_path / "defect.png", tile), write_png(tmp_path / "clean.png", gray(72, 64, seed=5) // 4)
    with running_server("--model", str(flagging_model)) as url:
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
    assert served["defect.png"]["has_defect"], "the flagging decision marks the image: the drawn mask is checked"


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


COUNT_PIXELS = """
const canvas = document.querySelector('figure.result[data-name="' + arguments[0] + '"] canvas');
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let pure = 0, tinted = 0;
const gray = [];
for (let i = 0; i < data.length; i += 4) {
  if (data[i] === 255 && data[i + 1] === 0 && data[i + 2] === 0) pure++;
  if (data[i] !== data[i + 1]) tinted++;
  gray.push(data[i]);
}
return [pure, tinted, canvas.style.width, gray];
"""
PAGE_MASK = """
const figure = document.querySelector('figure.result[data-name="' + arguments[0] + '"]');
return [...window.views.find(v => v.figure === figure).mask];
"""


def wait_done(browser, count: int):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "figure.result[data-state=done]")) == count)


def set_control(browser, element_id: str, value) -> None:
    browser.execute_script(
        "const e = document.getElementById(arguments[0]); if (e.type === 'checkbox') e.checked = arguments[1]; else e.value = arguments[1];"
        " e.dispatchEvent(new Event('input'));", element_id, value)  # fmt: skip


def test_opacity_outline_zoom_and_regions_show_the_served_mask_as_the_inspector_asks(browser, flagging_model, tmp_path):
    from scipy import ndimage
    from selenium.webdriver.common.by import By

    tile = gray(96, 128, seed=3)
    tile[30:60, 40:90] = 250
    tile[70:80, 10:20] = 250
    defect = write_png(tmp_path / "defect.png", tile)
    with running_server("--model", str(flagging_model)) as url:
        answer = requests.post(f"{url}/predict", files={"file": defect.open("rb")}, timeout=60).json()
        served = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png"])))) > 0
        browser.get(url)
        browser.find_element(By.ID, "files").send_keys(str(defect))
        wait_done(browser, 1)
        set_control(browser, "opacity", 100)
        pure, _, _, _ = browser.execute_script(COUNT_PIXELS, "defect.png")
        assert pure == answer["defect_pixels"] > 0, "at full opacity every mask pixel, and only those, is red"
        set_control(browser, "opacity", 0)
        assert browser.execute_script(COUNT_PIXELS, "defect.png")[1] == 0, "at opacity 0 the image alone"
        set_control(browser, "opacity", 100)
        set_control(browser, "outline", True)
        outlined = browser.execute_script(COUNT_PIXELS, "defect.png")[0]
        assert 0 < outlined < pure
        set_control(browser, "zoom", "4")
        assert browser.execute_script(COUNT_PIXELS, "defect.png")[2] == "512px", "400% of the image's own 128 px"
        figure = browser.find_element(By.CSS_SELECTOR, 'figure.result[data-name="defect.png"]')
        count = ndimage.label(served)[1]
        assert figure.get_attribute("data-regions") == str(count) and f"{count} defect region" in figure.text
        link = browser.find_element(By.ID, "card")
        assert link.is_displayed() and "operating point: pixel threshold" in browser.find_element(By.ID, "model").text
        assert requests.get(f"{url}/card", timeout=10).text.startswith("# Model card")


def test_a_16_bit_image_is_shown_as_the_server_decoded_it(browser, shipped_model, tmp_path):
    from selenium.webdriver.common.by import By

    wide = (gray(40, 56, seed=9).astype(np.uint16) * 257) ^ 0x00FF
    path = tmp_path / "wide16.tif"
    Image.fromarray(wide.astype(np.uint16)).save(path)
    with running_server("--model", str(shipped_model)) as url:
        browser.get(url)
        browser.find_element(By.ID, "files").send_keys(str(path))
        wait_done(browser, 1)
        set_control(browser, "opacity", 0)
        shown = np.array(browser.execute_script(COUNT_PIXELS, "wide16.tif")[3]).reshape(40, 56)
    assert np.array_equal(shown, read_image(path)), "the page shows the 8-bit image the model saw, not gray"


def test_the_page_says_when_the_server_stops_answering(browser, shipped_model):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with running_server("--model", str(shipped_model)) as url:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda d: "loading" not in d.find_element(By.ID, "model").text)
    browser.execute_script("checkHealth()")
    WebDriverWait(browser, 30).until(lambda d: "The server is not answering" in d.find_element(By.ID, "model").text)


def test_a_painted_stroke_is_saved_as_exactly_the_pixels_painted_and_the_page_says_so(browser, shipped_model, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    part = write_png(tmp_path / "part.png", gray(96, 128, seed=21))
    folder = tmp_path / "inbox"
    with running_server("--model", str(shipped_model), "--review-dir", str(folder)) as url:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "brush").is_displayed())
        browser.find_element(By.ID, "files").send_keys(str(part))
        wait_done(browser, 1)
        set_control(browser, "zoom", "1")
        set_control(browser, "brush-size", 6)
        figure = browser.find_element(By.CSS_SELECTOR, 'figure.result[data-name="part.png"]')
        figure.find_element(By.CSS_SELECTOR, "button[data-action=empty]").click()
        canvas = figure.find_element(By.TAG_NAME, "canvas")
        ActionChains(browser).move_to_element(canvas).move_by_offset(-30, 0).click_and_hold().move_by_offset(20, 0).move_by_offset(20, 0).release().perform()
        page_mask = np.array(browser.execute_script(PAGE_MASK, "part.png"), bool).reshape(96, 128)
        figure.find_element(By.CSS_SELECTOR, "button[data-verdict=correct]").click()
        WebDriverWait(browser, 30).until(lambda d: figure.get_attribute("data-review") in ("saved", "refused"))
        assert figure.get_attribute("data-review") == "saved" and "saved " in figure.text
    (mask_path,) = (folder / "masks").iterdir()
    saved = np.asarray(Image.open(mask_path)) > 0
    rows, cols = np.nonzero(saved)
    assert np.array_equal(saved, page_mask) and saved.sum() > 100
    assert rows.min() >= 48 - 5 and rows.max() <= 48 + 5 and cols.min() >= 64 - 30 - 5 and cols.max() <= 64 + 10 + 5, "a band along the stroke"
    assert (folder / "reviews.csv").read_text().count("\n") == 2


def test_a_review_without_the_token_is_refused_on_the_page_with_the_servers_sentence(browser, shipped_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    part = write_png(tmp_path / "part.png", gray(48, 64, seed=22))
    (tmp_path / "token").write_text("s3cret")
    folder = tmp_path / "inbox"
    with running_server("--model", str(shipped_model), "--review-dir", str(folder), "--review-token-file", str(tmp_path / "token")) as url:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "brush").is_displayed())
        browser.find_element(By.ID, "files").send_keys(str(part))
        wait_done(browser, 1)
        figure = browser.find_element(By.CSS_SELECTOR, 'figure.result[data-name="part.png"]')
        figure.find_element(By.CSS_SELECTOR, "button[data-verdict=clear]").click()
        WebDriverWait(browser, 30).until(lambda d: figure.get_attribute("data-review") == "refused")
        assert "refused: This server takes reviews only with its token" in figure.text
        assert not (folder / "reviews.csv").exists()
