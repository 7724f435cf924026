"""The ensemble: members and weights chosen on validation, one saved model that equals the weighted vote."""

import numpy as np
import pytest

from brain_tumor.ensemble import blend, build_ensemble, choose, macro_f1, select_members
from brain_tumor.models import build_model, load_model, save_model


def one_hot_probabilities(predicted: np.ndarray, classes: int = 4, confidence: float = 0.7) -> np.ndarray:
    out = np.full((len(predicted), classes), (1 - confidence) / (classes - 1))
    out[np.arange(len(predicted)), predicted] = confidence
    return out


def complementary(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """"a" is right and sure on classes 0-1, wrong and unsure on 2-3; "b" the other way round: each fills the other's
    gap, so a mix of the two beats either."""
    a = np.where((labels < 2)[:, None], one_hot_probabilities(labels, confidence=0.9),
                 one_hot_probabilities(np.zeros_like(labels), confidence=0.4))
    b = np.where((labels >= 2)[:, None], one_hot_probabilities(labels, confidence=0.9),
                 one_hot_probabilities(np.full_like(labels, 3), confidence=0.4))
    return a, b


def test_complementary_models_are_mixed_and_a_useless_one_is_left_out():
    labels = np.repeat([0, 1, 2, 3], 25)
    a, b = complementary(labels)
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


def test_the_outcome_records_why_no_mix_was_kept():
    """Hand-computed: "good" gets 3 of 4 right (macro-F1 (4/5 + 2/3) / 2 = 11/15), "bad" says class 1 always (1/3);
    their mix makes the same predictions as "good", so it does not beat it and no ensemble is built."""
    labels = np.array([0, 0, 1, 1])
    good = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.6, 0.4]])
    bad = np.array([[0.4, 0.6], [0.4, 0.6], [0.4, 0.6], [0.45, 0.55]])
    outcome = choose({"good": good, "bad": bad}, {"good": good, "bad": bad}, labels)
    assert outcome["decision"] == "no_gain" and outcome["val_images"] == 4
    assert outcome["candidates"] == [{"model": "good", "val_macro_f1": pytest.approx(11 / 15),
                                      "val_macro_f1_mirror": pytest.approx(11 / 15)},
                                     {"model": "bad", "val_macro_f1": pytest.approx(1 / 3),
                                      "val_macro_f1_mirror": pytest.approx(1 / 3)}]
    assert outcome["best_single"] == {"model": "good", "val_macro_f1": pytest.approx(11 / 15)}
    assert outcome["best_mix"] == {"members": {"good": 0.5, "bad": 0.5}, "tta": False,
                                   "val_macro_f1": pytest.approx(11 / 15)}
    assert outcome["chosen"] == {"members": {"good": 1.0}, "tta": False, "val_macro_f1": pytest.approx(11 / 15)}
    rounds = outcome["searches"]["plain"]
    assert [r["added"] for r in rounds] == ["good", None] and rounds[1]["members"] == {"good": 1}
    assert rounds[1]["scores"] == {"good": pytest.approx(11 / 15), "bad": pytest.approx(11 / 15)}

    # the mirror images make "good" perfect: chosen with them, still one model, so still no ensemble
    fixed = good.copy()
    fixed[3] = [0.3, 0.7]
    outcome = choose({"good": good, "bad": bad}, {"good": fixed, "bad": bad}, labels)
    assert outcome["decision"] == "no_gain"
    assert outcome["chosen"] == {"members": {"good": 1.0}, "tta": True, "val_macro_f1": 1.0}


def test_the_outcome_of_complementary_models_is_an_ensemble():
    labels = np.repeat([0, 1, 2, 3], 25)
    a, b = complementary(labels)
    outcome = choose({"a": a, "b": b}, {"a": a, "b": b}, labels)
    assert outcome["decision"] == "built" and set(outcome["chosen"]["members"]) == {"a", "b"}
    assert outcome["chosen"]["val_macro_f1"] > outcome["best_single"]["val_macro_f1"]
    assert outcome["best_mix"]["val_macro_f1"] == outcome["chosen"]["val_macro_f1"]


@pytest.mark.parametrize("enabled, decision, sentence", [
    (False, "off", "No ensemble: turned off (ensemble=false)"),
    (True, "too_few", "No ensemble: fewer than two trained models")])
def test_the_step_records_an_outcome_with_nothing_to_add(tmp_path, enabled, decision, sentence):
    import json

    from brain_tumor.figures import ensemble_selection
    from steps.ensemble import ensemble

    rows, refs = [{"model": "cnn_a"}], {"cnn_a": "ref"}
    trained = {"trained_cnn_a": {"model": "cnn_a"}, "trained_cnn_b": {"model": "cnn_b"} if not enabled else None}
    result = ensemble("manifest.csv", "hash", str(tmp_path), "", 0.15, 0.15, 42, rows, refs, enabled, "", **trained)
    assert result == {"rows": rows, "model_refs": refs, "dataset_hash": "hash"}
    record = json.loads(ensemble_selection(tmp_path).read_text())
    assert record == {"decision": decision, "sentence": sentence,
                      "candidates": [{"model": "cnn_a"}] + ([{"model": "cnn_b"}] if not enabled else [])}


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
