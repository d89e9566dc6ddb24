"""`koemo app` in a real headless browser: Debian's chromium driven by Selenium.

The page is served on 127.0.0.1 at a free port (in a thread) with the tiny exported predictor;
the test uploads a synthetic recording and sees the label and both charts, then uploads a text
file and sees the message. The browser comes from `make setup-browser` (part of `make test`):
a missing chromium is a failure, never a skip.

KOEMO_APP_SCREENSHOT=docs/app.png saves the screenshot of the page with a prediction there
(how the README's picture is made)."""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from koemo.inference import app as app_module
from koemo.inference.app import AppSettings, serve
from koemo.inference.predictor import Predictor
from koemo.synth.speech import SAMPLE_RATE, make_voice, synthesize

pytestmark = pytest.mark.slow
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromedriver")
WAIT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def page(exported_predictor_dir):
    predictor = Predictor.from_checkpoint(exported_predictor_dir)
    port = free_port()
    demo = serve(predictor, AppSettings(max_upload_mb=5, max_seconds=60), port=port, block=False)
    yield f"http://127.0.0.1:{port}/", predictor
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = CHROMIUM
    missing = [path for path in CHROMIUM if not Path(path).is_file()]
    assert not missing, f"{missing} missing: run `make setup-browser` (apt-get install chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--lang=en-US"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    yield chrome
    chrome.quit()


def shown(browser, element_id: str) -> bool:
    """Gradio leaves hidden components out of the page (or hides them)."""
    from selenium.webdriver.common.by import By

    return any(e.is_displayed() for e in browser.find_elements(By.ID, element_id))


def upload_and_predict(browser, url, path, transcript=""):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    wait = WebDriverWait(browser, WAIT_S)
    upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#koemo-upload input[type=file]")))
    upload.send_keys(str(path))
    wait.until(ec.text_to_be_present_in_element((By.ID, "koemo-upload"), Path(path).stem))
    if transcript:
        browser.find_element(By.CSS_SELECTOR, "#koemo-text textarea").send_keys(transcript)
    browser.find_element(By.ID, "koemo-predict").click()
    return wait


def test_page_predicts_an_uploaded_recording_and_explains_bad_files(browser, page, tmp_path,
                                                                   tiny_transcript):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    rng = np.random.default_rng(4)
    wav = tmp_path / "speech.wav"
    sf.write(wav, synthesize(int(1.8 * SAMPLE_RATE), 4.0, make_voice("F", rng), rng), SAMPLE_RATE)
    url, predictor = page
    expected = predictor.predict(wav, tiny_transcript)
    wait = upload_and_predict(browser, url, wav, tiny_transcript)
    wait.until(ec.text_to_be_present_in_element((By.ID, "koemo-result"), "Emotion:"))
    result = browser.find_element(By.ID, "koemo-result").text
    assert "Arousal:" in result and "Valence:" in result
    assert result.split("Emotion:")[1].split()[0] == expected.label      # the API's answer
    assert f"Arousal: {expected.arousal:.2f}" in result
    # Both charts arrive as images (matplotlib figures rendered by gr.Plot).
    for chart in ("koemo-probabilities", "koemo-va"):
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{chart} img")))
    assert not shown(browser, "koemo-error")
    shot = tmp_path / "app.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    if os.environ.get("KOEMO_APP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["KOEMO_APP_SCREENSHOT"])

    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is a text file, not a recording\n", encoding="utf-8")
    wait = upload_and_predict(browser, url, text_file)
    wait.until(ec.text_to_be_present_in_element((By.ID, "koemo-error"), "Cannot predict"))
    message = browser.find_element(By.ID, "koemo-error").text
    assert "notes.txt: not an audio file koemo can read" in message and "Traceback" not in message
    assert not shown(browser, "koemo-probabilities") and not shown(browser, "koemo-result")


def test_long_recording_with_typed_transcript_needs_no_speech_model(browser, page, tmp_path,
                                                                     tiny_transcript, monkeypatch):
    """A 6 s recording and a typed transcript on a server without any speech model (the
    config's openai/whisper-small cannot load offline): the result, its window timeline, the
    predictor's provenance, and no koemo-app-* folder left behind."""
    import tempfile

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    url, predictor = page
    assert predictor.asr is not None and predictor._transcriber is None
    rng = np.random.default_rng(6)
    wav = tmp_path / "six_seconds.wav"
    sf.write(wav, synthesize(int(6.0 * SAMPLE_RATE), 4.0, make_voice("M", rng), rng), SAMPLE_RATE)
    assert 6.0 > predictor.window_seconds
    expected = predictor.predict(wav, tiny_transcript)
    made = []                                     # the page's temporary folders (not Gradio's)
    real = tempfile.TemporaryDirectory

    def recorded(*args, **kwargs):
        folder = real(*args, **kwargs)
        made.append(Path(folder.name))
        return folder

    monkeypatch.setattr(app_module.tempfile, "TemporaryDirectory", recorded)
    wait = upload_and_predict(browser, url, wav, tiny_transcript)
    wait.until(ec.text_to_be_present_in_element((By.ID, "koemo-result"), "Emotion:"))
    result = browser.find_element(By.ID, "koemo-result").text
    assert f"Arousal: {expected.arousal:.2f}" in result and not shown(browser, "koemo-error")
    assert "Predictor: trained on synthetic corpus" in result
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#koemo-timeline img")))
    assert shown(browser, "koemo-segments")
    segments = browser.find_element(By.ID, "koemo-segments").text
    assert "overlapping windows" in segments and "typed transcript" in segments
    notes = browser.find_element(By.ID, "koemo-notes").text
    assert "trained on synthetic data: not meaningful on real speech" in notes
    assert predictor._transcriber is None                     # no speech model was loaded
    assert made and all(p.name.startswith("koemo-app-") and not p.exists() for p in made)
