"""`brain-tumor predict` and Grad-CAM: same preprocessing as training, per-file skips, model checks, heatmaps."""

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import CLASS_NAMES
from PIL import Image

from brain_tumor.data import Layout, scan
from brain_tumor.errors import UserError
from brain_tumor.evaluation import predict_probabilities
from brain_tumor.gradcam import gradcam, gradcams, target_layer_index
from brain_tumor.models import build_model, save_model
from brain_tumor.predict import list_images, load_checked, predict_files
from cli.main import main


def saved_model(path, name="cnn_b", size=32, classes=CLASS_NAMES, outputs=None):
    model = build_model(name, size, outputs or len(classes), None)
    return save_model(model, path, {"model_name": name, "class_names": classes, "image_size": size,
                                    "val_accuracy": 0.5, "val_loss": 1.0})


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return saved_model(tmp_path_factory.mktemp("model") / "model.keras")


def test_a_folder_gives_a_csv_and_bad_files_are_skipped_one_by_one(model_file, make_data, tmp_path, capsys):
    folder = make_data(train_per_class=3) / "Training"
    (folder / "glioma_tumor" / "notes.jpg").write_text("not an image")
    (folder / "no_tumor" / "empty.png").write_bytes(b"")
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(model_file), str(folder), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "12 image(s) predicted, 2 skipped" in captured.out
    assert "notes.jpg: not a readable image" in captured.err and "empty.png" in captured.err
    assert "Traceback" not in captured.err
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["file", "predicted", "confidence", *(f"p_{n}" for n in CLASS_NAMES)]
    assert len(rows) == 12 and set(rows["predicted"]) <= set(CLASS_NAMES)
    probabilities = rows[[f"p_{n}" for n in CLASS_NAMES]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)
    assert np.allclose(rows["confidence"], probabilities.max(axis=1))


def test_one_image_gives_a_readable_line(model_file, make_data, capsys):
    image = next((make_data(train_per_class=1) / "Training" / "no_tumor").glob("*.jpg"))
    assert main(["predict", str(model_file), str(image)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"{image}: ") and all(f"{n} 0." in line for n in CLASS_NAMES)


def test_prediction_preprocesses_exactly_as_training(model_file, make_data):
    """Probabilities from files through predict equal the model on the pixels the training scan decoded."""
    data = make_data(train_per_class=2)
    model, metadata = load_checked(model_file)
    scanned = scan(Layout(data / "Training"), 32, progress=False)
    rows, skipped = predict_files(model, metadata, [data / "Training" / f for f in scanned.files])
    expected = predict_probabilities(model, scanned.pixels)
    assert not skipped
    assert np.allclose(rows[[f"p_{n}" for n in CLASS_NAMES]].to_numpy(), expected, atol=1e-4)


def test_a_run_folder_means_its_champion(model_file, make_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "champion.keras").write_bytes(model_file.read_bytes())
    image = next((make_data(train_per_class=1) / "Training" / "glioma_tumor").glob("*.jpg"))
    assert main(["predict", str(run), str(image)]) == 0
    assert f"({run / 'champion.keras'})" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["not ours", "class mismatch", "custom code", "missing", "no server"])
def test_models_that_are_not_ours_are_clear_errors(case, tmp_path, make_data, capsys):
    image = next((make_data(train_per_class=1) / "Training" / "glioma_tumor").glob("*.jpg"))
    path = tmp_path / "model.keras"
    if case == "not ours":
        build_model("cnn_b", 32, 4, None).save(path)
        expected = "is not a model saved by this project"
    elif case == "class mismatch":
        saved_model(path, classes=CLASS_NAMES[:3], outputs=4)
        expected = "predicts 4 classes but its metadata lists 3"
    elif case == "custom code":
        inputs = keras.Input((32, 32, 3))
        model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
        save_model(model, path, {"model_name": "x", "class_names": CLASS_NAMES, "image_size": 32})
        expected = "could not be loaded safely"
    elif case == "missing":
        path = tmp_path / "nowhere" / "model.keras"
        expected = "Model file not found"
    else:
        path = "champion"
        expected = "needs a configured server"
    assert main(["predict", str(path), str(image)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_an_unknown_gradcam_class_and_an_empty_folder_are_clear_errors(model_file, tmp_path):
    model, metadata = load_checked(model_file)
    with pytest.raises(UserError, match="Unknown class 'tumour'"):
        predict_files(model, metadata, [], class_name="tumour")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="No files in"):
        list_images(tmp_path / "empty")


def test_gradcam_overlays_are_written_per_image(model_file, make_data, tmp_path, capsys):
    folder = make_data(train_per_class=1) / "Training"
    assert main(["predict", str(model_file), str(folder), "--out", str(tmp_path / "p.csv"),
                 "--gradcam", str(tmp_path / "cams"), "--class", "no_tumor"]) == 0
    overlays = sorted((tmp_path / "cams").glob("*_gradcam.png"))
    assert len(overlays) == 4
    pixels = np.asarray(Image.open(overlays[0]))
    assert pixels.shape == (32, 32, 3) and pixels.std() > 5


def test_gradcam_uses_the_last_conv_block_and_resnets_last_stage():
    cnn = build_model("cnn_a", 64, 4, None)
    assert cnn.layers[target_layer_index(cnn)].name == [layer.name for layer in cnn.layers
                                                         if isinstance(layer, keras.layers.Conv2D)][-1]
    resnet = build_model("resnet50", 64, 4, None)
    stage = resnet.layers[target_layer_index(resnet)]
    assert stage.name == "resnet50" and stage.output.shape[1:] == (2, 2, 2048)  # conv5, stride 32
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    heatmap, probabilities = gradcam(resnet, pixels, class_index=2)
    assert heatmap.shape == (64, 64) and 0 <= heatmap.min() and heatmap.max() <= 1
    assert np.allclose(probabilities, resnet.predict(pixels[None].astype(np.float32), verbose=0)[0], atol=1e-5)


def test_a_batch_gives_each_image_the_heatmap_it_gets_alone():
    """Grad-CAM in batches (evaluation) must equal one image at a time (predict, the app): BatchNorm in inference mode
    keeps the images independent."""
    model = build_model("cnn_b", 32, 4, None)
    images = np.random.default_rng(1).integers(0, 255, (5, 32, 32, 3)).astype(np.uint8)
    heatmaps, probabilities = gradcams(model, images, [0, 1, 2, 3, 1])
    default, _ = gradcams(model, images)
    for i, image in enumerate(images):
        alone, alone_probabilities = gradcam(model, image, [0, 1, 2, 3, 1][i])
        assert np.allclose(heatmaps[i], alone, atol=1e-4) and np.allclose(probabilities[i], alone_probabilities,
                                                                           atol=1e-5)
        assert np.allclose(default[i], gradcam(model, image)[0], atol=1e-4)  # default: each one's predicted class
    assert heatmaps.shape == (5, 32, 32) and not np.allclose(heatmaps[0], heatmaps[1])


def blob_images(n, size, rng):
    """Noisy dark images; class 1 has one small bright blob somewhere, class 0 none. Returns pixels, labels, centres."""
    images = rng.normal(40, 12, (n, size, size, 1)).clip(0, 255)
    labels = np.arange(n) % 2
    centres = rng.integers(6, size - 6, (n, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    for i in np.flatnonzero(labels):
        cy, cx = centres[i]
        images[i, (yy - cy) ** 2 + (xx - cx) ** 2 <= 6, 0] = 230
    return np.repeat(images, 3, axis=-1).astype(np.uint8), labels, centres


def test_the_heatmap_peaks_on_the_blob_that_decides_the_class():
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    pixels, labels, _ = blob_images(400, 32, rng)
    model = build_model("cnn_a", 32, 2, None)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(pixels.astype(np.float32), labels, epochs=6, batch_size=32, verbose=0)
    test, test_labels, centres = blob_images(40, 32, np.random.default_rng(1))
    assert model.evaluate(test.astype(np.float32), test_labels, verbose=0)[1] >= 0.9
    hits = []
    for i in np.flatnonzero(test_labels):
        heatmap, _ = gradcam(model, test[i], class_index=1)
        peak = np.unravel_index(heatmap.argmax(), heatmap.shape)
        hits.append(np.hypot(*(np.array(peak) - centres[i])) <= 5)
    assert np.mean(hits) >= 0.8, hits

