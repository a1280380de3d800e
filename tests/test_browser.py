"""The web page in a real browser: Debian's headless Chromium, driven by Selenium through
/usr/bin/chromedriver, against the real server (``python -m colorkit serve`` in a subprocess).

Without Chromium the test is skipped on a developer's machine (``make browser`` installs it as
root) and fails under CI (``CI`` set, as .ci/run does), so a CI run cannot pass without it.
"""

import base64
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from colorkit import metrics
from conftest import stop

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
#: switches for a headless, sandbox-less (root, containers) Chromium that reaches nothing but the page
CHROMIUM_SWITCHES = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,900")

pytestmark = pytest.mark.slow


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A fresh headless Chromium with its own profile folder."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "Debian's chromium and chromium-driver are not installed (make browser installs them as root)"
        if under_ci():
            pytest.fail(message + "; under CI the browser test must run")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for switch in CHROMIUM_SWITCHES:
        options.add_argument(switch)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}: {server.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the server did not answer /healthz within {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(colour_run):
    """``python -m colorkit serve`` on a free localhost port; its URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "colorkit", "serve", "--run", str(colour_run), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        stop(process)


def page_state(driver) -> str:
    return driver.execute_script("return document.body.dataset.state")


def wait_for_result(driver, previous_src=None, timeout: float = 60.0) -> str:
    """Wait until the page shows a new colorized result; its object URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page_state(driver)
        src = driver.find_element("id", "result-image").get_attribute("src")
        if state == "error":
            pytest.fail("the page reports: " + driver.find_element("id", "status").text)
        if state == "done" and src and src != previous_src:
            return src
        time.sleep(0.2)
    pytest.fail(f"no result after {timeout:.0f} s (state {page_state(driver)!r})")


def result_pixels(driver) -> np.ndarray:
    """The result image as the page holds it, read back through a canvas."""
    data_url = driver.execute_script("""
        const image = document.getElementById("result-image");
        const canvas = document.createElement("canvas");
        canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
        canvas.getContext("2d").drawImage(image, 0, 0);
        return canvas.toDataURL("image/png");""")
    png = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def broken_images_shown(driver) -> list[str]:
    """Ids of the images the page lays out (not hidden) that have no picture: a browser draws
    those as a broken-image icon with their alt text."""
    return driver.execute_script("""
        return [...document.images]
            .filter((image) => image.getClientRects().length > 0 && (!image.complete || image.naturalWidth === 0))
            .map((image) => image.id);""")


def panel_boxes(driver) -> list[dict]:
    """Each image panel's frame and caption, as laid out."""
    return driver.execute_script("""
        return [...document.querySelectorAll(".pair figure")].map((figure) => ({
            frame: figure.querySelector(".frame").getBoundingClientRect().toJSON(),
            caption: figure.querySelector("figcaption").getBoundingClientRect().toJSON()}));""")


def test_before_an_upload_the_panels_are_empty_not_broken_images(browser, server):
    browser.set_window_size(1200, 800)
    browser.get(server + "/")
    assert broken_images_shown(browser) == []
    for panel in panel_boxes(browser):
        assert panel["frame"]["height"] >= 100 and panel["frame"]["width"] >= 300  # an empty panel, still a panel
        assert panel["caption"]["top"] >= panel["frame"]["bottom"]  # the caption sits below it


def test_upload_shows_a_colour_result_and_a_click_adds_a_hint(browser, server, tmp_path):
    upload = tmp_path / "street.png"
    gray_photo = np.asarray(Image.fromarray(photos.astronaut()[100:280, 150:390]).convert("L"))
    Image.fromarray(gray_photo).save(upload)  # a truly gray photo, 240 x 180

    browser.get(server + "/")
    deadline = time.monotonic() + 30
    while "strided_cnn" not in browser.find_element("id", "model-info").text and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "takes colour hints" in browser.find_element("id", "model-info").text
    assert browser.find_element("id", "hint-tools").is_displayed()

    browser.find_element("id", "file-input").send_keys(str(upload))
    first = wait_for_result(browser)
    pixels = result_pixels(browser)
    assert pixels.shape == (180, 240, 3)
    assert metrics.colorfulness(pixels / 255.0) > 30 > metrics.colorfulness(np.repeat(gray_photo[..., None], 3, -1) / 255.0)
    assert browser.find_element("id", "download").get_attribute("href") == first
    assert broken_images_shown(browser) == []

    gray = browser.find_element("id", "gray-image")
    browser.execute_script("document.getElementById('hint-colour').value = '#0050ff'")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element_with_offset(gray, 10, 10).click().perform()
    assert browser.find_element("id", "hint-count").text == "1 hint"
    assert len(browser.find_elements("css selector", "#markers .marker")) == 1
    second = wait_for_result(browser, previous_src=first)
    assert result_pixels(browser).shape == (180, 240, 3) and second != first
