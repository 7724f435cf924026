"""The ensemble: members and weights chosen on validation, one saved model that equals the weighted vote."""

import numpy as np
import pytest

from brain_tumor.ensemble import blend, build_ensemble, macro_f1, select_members
from brain_tumor.models import build_model, load_model, save_model


def one_hot_probabilities(predicted: np.ndarray, classes: int = 4, confidence: float = 0.7) -> np.ndarray:
    out = np.full((len(predicted), classes), (1 - confidence) / (classes - 1))
    out[np.arange(len(predicted)), predicted] = confidence
    return out


def test_complementary_models_are_mixed_and_a_useless_one_is_left_out():
    labels = np.repeat([0, 1, 2, 3], 25)
    # "a" is right and sure on classes 0-1, wrong and unsure on 2-3; "b" the other way round: mixed, each fills
    # the other's gap
    a = np.where((labels < 2)[:, None], one_hot_probabilities(labels, confidence=0.9),
                 one_hot_probabilities(np.zeros_like(labels), confidence=0.4))
    b = np.where((labels >= 2)[:, None], one_hot_probabilities(labels, confidence=0.9),
                 one_hot_probabilities(np.full_like(labels, 3), confidence=0.4))
    noise = one_hot_probabilities(np.random.default_rng(0).integers(0, 4, 100), confidence=0.99)
    probabilities = {"a": a, "b": b, "noise": noise}
    weights = select_members(probabilities, labels)
    assert set(weights) == {"a", "b"} and sum(weights.values()) == pytest.approx(1.0)
    assert macro_f1(labels, blend(probabilities, weights), 4) > max(macro_f1(labels, p, 4) for p in (a, b))


def test_the_best_single_model_alone_when_nothing_helps_it():
    labels = np.repeat([0, 1, 2, 3], 10)
    perfect = one_hot_probabilities(labels)
    weaker = one_hot_probabilities(np.roll(labels, 3))
    assert select_members({"weaker": weaker, "perfect": perfect}, labels) == {"perfect": 1.0}


@pytest.mark.parametrize("tta", [False, True])
def test_the_saved_ensemble_is_the_weighted_vote_and_loads_safely(tmp_path, tta):
    members = {name: build_model(name, 32, 4) for name in ("cnn_a", "cnn_b")}
    pixels = np.random.default_rng(1).uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    weights = {"cnn_b": 0.75, "cnn_a": 0.25}
    model = build_ensemble(members, weights, tta, 32)
    path = save_model(model, tmp_path / "ensemble.keras", {"model_name": "ensemble", "class_names": list("abcd"),
                                                           "image_size": 32})
    loaded, _ = load_model(path)  # safe mode: no code from the file runs
    expected = 0
    for name, weight in weights.items():
        single = members[name].predict(pixels, verbose=0)
        if tta:
            single = (single + members[name].predict(pixels[:, :, ::-1], verbose=0)) / 2
        expected = expected + weight * single
    assert np.allclose(loaded.predict(pixels, verbose=0), expected, atol=1e-5)


def test_a_saved_ensemble_with_mirror_images_loads_in_a_fresh_process(tmp_path):
    """As `brain-tumor predict champion` loads it: a process that never imported the ensemble module (found on the
    server: the mirror-image layer was unknown there, and a TTA ensemble champion could not be served)."""
    import subprocess
    import sys

    members = {name: build_model(name, 32, 4) for name in ("cnn_a", "cnn_b")}
    path = save_model(build_ensemble(members, {"cnn_b": 0.5, "cnn_a": 0.5}, True, 32), tmp_path / "ensemble.keras",
                      {"model_name": "ensemble", "class_names": list("abcd"), "image_size": 32})
    code = "import sys; from brain_tumor.predict import load_checked; print(load_checked(sys.argv[1])[1]['model_name'])"
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.split()[-1] == "ensemble", result.stderr[-2000:]


def test_grad_cam_explains_an_ensemble_through_its_heaviest_member():
    from brain_tumor.gradcam import explained_model, gradcam

    members = {name: build_model(name, 32, 4) for name in ("cnn_a", "cnn_b")}
    model = build_ensemble(members, {"cnn_b": 0.6, "cnn_a": 0.4}, True, 32)
    assert explained_model(model) is members["cnn_b"]
    heatmap, probabilities = gradcam(model, np.full((32, 32, 3), 100.0, np.float32))
    assert heatmap.shape == (32, 32) and probabilities.shape == (4,)
