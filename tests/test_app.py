"""The Gradio app: safe defaults, the handler, and a real browser uploading a slice and a fake one."""

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASS_NAMES
from PIL import Image

from brain_tumor.app import DISPLAY_SIZE, NOT_AN_IMAGE, classify, enlarged, launch
from brain_tumor.models import build_model, save_model
from brain_tumor.predict import load_checked
from brain_tumor.synthetic import phantom

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A small model and its app, listening on a free localhost port until the module's tests are done."""
    folder = tmp_path_factory.mktemp("app")
    path = save_model(build_model("cnn_b", 32, 4, None), folder / "model.keras",
                      {"model_name": "cnn_b", "class_names": CLASS_NAMES, "image_size": 32, "val_accuracy": 0.875,
                       "val_loss": 0.3125, "brain_tumor_version": "0.1.0"})
    model, metadata = load_checked(path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = launch(model, metadata, path, port=port, block=False, examples_dir=folder / "examples")
    yield model, metadata, app, folder
    app.close()


def test_it_listens_on_localhost_without_a_share_link(served):
    _, _, app, _ = served
    assert app.server_name == "127.0.0.1" and app.share_url is None and not app.share
    assert app.local_url.startswith("http://127.0.0.1:")


def test_the_handler_gives_probabilities_the_slice_the_model_saw_and_a_heatmap(served, tmp_path):
    from brain_tumor.predict import decode_for_model

    model, metadata, _, _ = served
    path = tmp_path / "slice.png"
    Image.fromarray(phantom(0, 96, np.random.default_rng(0))).save(path)
    probabilities, seen, overlay = classify(model, metadata, str(path))
    assert list(probabilities) == CLASS_NAMES and sum(probabilities.values()) == pytest.approx(1, abs=1e-4)
    assert seen.shape == (32, 32, 3) and seen.dtype == np.uint8  # the model's input size, not the file's 96
    assert np.array_equal(seen, decode_for_model(path, 32))
    expected = model.predict(seen[None].astype(np.float32), verbose=0)[0]
    assert [probabilities[n] for n in CLASS_NAMES] == pytest.approx(expected.tolist(), abs=1e-4)  # what it judged
    assert overlay.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3) and overlay.dtype == np.uint8
    assert classify(model, metadata, None) == (None, None, None)
    shown = enlarged(seen)  # as the app shows it: each of the model's pixels repeated, 12 x 12
    assert shown.shape == (384, 384, 3)
    assert np.array_equal(shown[::12, ::12], seen) and np.array_equal(shown[11::12, 11::12], seen)


def test_the_handler_refuses_a_fake_image_with_a_plain_message(served, tmp_path):
    import gradio as gr

    model, metadata, _, _ = served
    fake = tmp_path / "scan.jpg"
    fake.write_text("this is a text file, not a JPEG")
    with pytest.raises(gr.Error) as error:
        classify(model, metadata, str(fake))
    assert error.value.message == NOT_AN_IMAGE and str(tmp_path) not in NOT_AN_IMAGE


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (.ci/run installs it)")
def test_in_a_browser_an_upload_shows_the_label_and_heatmap_and_a_fake_gets_the_message(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _, _, app, _ = served
    slice_path = tmp_path / "slice.jpg"
    Image.fromarray(phantom(1, 96, np.random.default_rng(1))).convert("RGB").save(slice_path)
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is a text file, not a JPEG")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page()
        page.goto(app.local_url)
        expect(page.get_by_text("Research prototype — not for clinical use.")).to_be_visible(timeout=30_000)
        expect(page.locator("#model-info")).to_contain_text("accuracy 0.875")
        page.locator("#upload input[type=file]").set_input_files(str(slice_path))
        for name in CLASS_NAMES:
            expect(page.locator("#probabilities")).to_contain_text(name, timeout=30_000)
        expect(page.locator("#gradcam img")).to_be_visible(timeout=30_000)
        assert page.locator("#gradcam img").evaluate("i => i.naturalWidth") > 0
        expect(page.locator("#model-input img")).to_be_visible(timeout=30_000)
        assert page.locator("#model-input img").evaluate("i => [i.naturalWidth, i.naturalHeight]") == [384, 384]

        page.locator("#upload button[aria-label='Clear']").first.click()
        page.locator("#upload input[type=file]").set_input_files(str(fake))
        expect(page.get_by_text(NOT_AN_IMAGE)).to_be_visible(timeout=30_000)
        content = page.content()
        browser.close()
    assert "Traceback" not in content and str(tmp_path) not in content
