"""The recipe as parameters: the seed's kept exactly, crop to the head, and precision chosen from the hardware."""

from dataclasses import asdict

import keras
import numpy as np
import pytest
from PIL import Image

from brain_tumor import precision
from brain_tumor.images import decode_image, head_box
from brain_tumor.models import build_model
from brain_tumor.recipe import SEED, Recipe, choose
from pipelines.config import PipelineConfig


def tuned() -> Recipe:
    config = PipelineConfig()
    return Recipe(**{name: getattr(config, name) for name in asdict(SEED)})


def test_the_seed_recipe_is_the_notebooks_whatever_the_knobs_say():
    assert choose("seed", tuned()) is SEED
    assert (SEED.optimizer, SEED.lr, SEED.augment, SEED.schedule, SEED.monitor, SEED.epochs, SEED.patience) == (
        "adam", 1e-4, "seed", "plateau", "val_loss", 15, 5)
    assert choose("tuned", tuned()) == tuned() != SEED


def test_the_training_step_trains_with_the_seed_recipe_when_asked(monkeypatch, tmp_path):
    import steps.train_model as step

    seen = {}

    def train_and_save(prepared, model, config, out, *args, **kwargs):
        seen["recipe"] = config.recipe
        raise SystemExit  # stop here: what was asked for is all this test needs

    monkeypatch.setattr(step, "train_and_save", train_and_save)
    monkeypatch.setattr(step, "step_data", lambda *a, **k: type("P", (), {"scanned": type("S", (), {
        "class_names": ["a", "b"]})()})())
    knobs = {name: getattr(PipelineConfig(), name) for name in asdict(SEED)}
    with pytest.raises(SystemExit):
        step.train_model("cnn_a", "m.csv", "h", {"a": 1.0, "b": 1.0}, str(tmp_path), 32, 0, "", 0.15, 0.15,
                         "float32", "none", True, "seed", **knobs)
    assert seen["recipe"] is SEED


def test_the_head_box_frames_the_head_whatever_the_canvas(tmp_path):
    canvas = np.zeros((300, 400), np.uint8)
    canvas[80:220, 150:260] = 180  # the head: 140 rows × 110 columns, off-centre
    canvas[5:9, 5:60] = 255  # a caption: too thin to count
    left, top, right, bottom = head_box(Image.fromarray(canvas).convert("RGB"), margin=0.0)
    assert right - left == bottom - top == 140  # square, the head's larger side
    assert (left + right) / 2 == pytest.approx(205, abs=1) and (top + bottom) / 2 == pytest.approx(150, abs=1)
    Image.fromarray(canvas).save(tmp_path / "slice.png")
    cropped = decode_image(tmp_path / "slice.png", 32, crop=True).pixels
    assert cropped[16, 16].mean() > 150 and cropped[2, 16].mean() > 150  # the head fills the frame top to bottom
    assert cropped[16, 1].mean() < 50  # and is narrower than tall: black at the sides of the square
    assert decode_image(tmp_path / "slice.png", 32).pixels[16, 2].mean() < 10  # uncropped: background at the side


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    assert precision.resolve("auto") == "bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert precision.resolve("auto") == "float32"
    monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert precision.resolve("auto") == "float16"


def test_bfloat16_on_a_cpu_is_the_onednn_rewrite_and_float32_undoes_it(monkeypatch):
    monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind=None: [])
    try:
        assert precision.use("bfloat16") == "bfloat16"
        assert precision.tf.config.optimizer.get_experimental_options()["auto_mixed_precision_onednn_bfloat16"]
        assert keras.mixed_precision.global_policy().name == "float32"  # the model itself stays float32
    finally:
        precision.use("float32")
    assert not precision.tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")


def test_a_mixed_float16_model_is_saved_as_float32_with_its_softmax_in_float32():
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        mixed = build_model("cnn_b", 32, 4)
        assert mixed.layers[-1].dtype_policy.name == "float32"  # the final softmax
    finally:
        keras.mixed_precision.set_global_policy("float32")
    copy = precision.float32_copy(mixed, lambda: build_model("cnn_b", 32, 4))
    assert copy is not mixed and copy.dtype_policy.name == "float32"
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    assert np.allclose(copy.predict(pixels, verbose=0), mixed.predict(pixels, verbose=0), atol=1e-2)
