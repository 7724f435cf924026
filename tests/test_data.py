"""Finding, validating and decoding data folders: layouts, bad input (clear errors, counted skips), image modes."""

import json
import shutil

import numpy as np
import pytest
from conftest import CLASS_NAMES, tree_digest
from PIL import Image

from brain_tumor.data import Layout, find_layout, scan
from brain_tumor.images import decode_image, to_rgb
from cli.main import main


def train_cli(data_args, out, *extra):
    return main(["train", *data_args, "--model", "cnn_b", "--epochs", "1", "--image-size", "32",
                 "--out", str(out), *extra])


# --- layouts -------------------------------------------------------------------------------------------------------

def test_root_with_training_and_testing(make_data):
    root = make_data(4, 2)
    layout = find_layout(root)
    assert layout == Layout(root / "Training", root / "Testing")
    scanned = scan(layout, 16, progress=False)
    assert scanned.class_names == CLASS_NAMES
    assert scanned.sources.count("train") == 16 and scanned.sources.count("test") == 8
    assert scanned.pixels.shape == (24, 16, 16, 3) and scanned.pixels.dtype == np.uint8


def test_folder_of_class_folders_is_a_training_folder(make_data):
    root = make_data(3)
    assert find_layout(root / "Training") == Layout(root / "Training", None)


def test_explicit_train_and_test_dirs(make_data):
    root = make_data(3, 2)
    layout = find_layout(train_dir=root / "Training", test_dir=root / "Testing")
    assert layout.test_dir == root / "Testing"


def test_classes_are_sorted_folder_names_and_labels_follow(make_data):
    root = make_data(2)
    scanned = scan(find_layout(root), 16, progress=False)
    for file, label in zip(scanned.files, scanned.labels):
        assert f"/{CLASS_NAMES[label]}/" in file


# --- bad input: one clear message, exit code 2, no traceback ---------------------------------------------------------

def assert_user_error(capsys, code, *fragments):
    err = capsys.readouterr().err
    assert code == 2
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1  # (after a progress bar)
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


def test_missing_data_folder(tmp_path, capsys):
    code = train_cli(["--data", str(tmp_path / "nope")], tmp_path / "out")
    assert_user_error(capsys, code, "Data folder not found", str(tmp_path / "nope"), "Expected layout")


def test_missing_training_folder(make_data, tmp_path, capsys):
    root = make_data(2, 2)
    shutil.rmtree(root / "Training")
    code = train_cli(["--data", str(root)], tmp_path / "out")
    assert_user_error(capsys, code, "Missing Training folder", str(root), "Testing/")


def test_missing_train_dir(tmp_path, capsys):
    code = train_cli(["--train-dir", str(tmp_path / "absent")], tmp_path / "out")
    assert_user_error(capsys, code, "Training folder not found", str(tmp_path / "absent"))


def test_unrecognised_layout(tmp_path, capsys):
    root = tmp_path / "flat"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "a.jpg")
    code = train_cli(["--data", str(root)], tmp_path / "out")
    assert_user_error(capsys, code, "Unrecognised layout", str(root), "Training/<class>")


def test_empty_class_folder(make_data, tmp_path, capsys):
    root = make_data(2)
    (root / "Training" / "extra_class").mkdir()
    code = train_cli(["--data", str(root)], tmp_path / "out")
    assert_user_error(capsys, code, "Empty class folder", str(root / "Training" / "extra_class"))


def test_fewer_than_two_classes(make_data, tmp_path, capsys):
    root = make_data(2)
    for name in CLASS_NAMES[1:]:
        shutil.rmtree(root / "Training" / name)
    code = train_cli(["--data", str(root)], tmp_path / "out")
    assert_user_error(capsys, code, "Fewer than two classes", "glioma_tumor")


def test_test_class_absent_from_training(make_data, tmp_path, capsys):
    root = make_data(2, 2)
    (root / "Testing" / "no_tumor").rename(root / "Testing" / "astrocytoma")
    code = train_cli(["--data", str(root)], tmp_path / "out")
    assert_user_error(capsys, code, "Test classes absent from training: astrocytoma", str(root / "Testing"))


def test_class_with_only_unreadable_files(make_data, tmp_path, capsys):
    root = make_data(2)
    folder = root / "Training" / "no_tumor"
    for image in folder.iterdir():
        image.write_bytes(b"")
    code = train_cli(["--data", str(root)], tmp_path / "out")
    assert_user_error(capsys, code, "No readable images for class no_tumor", str(folder), "0 bytes")


def test_unknown_model_name(make_data, tmp_path, capsys):
    code = main(["train", "--data", str(make_data(2)), "--model", "vgg99", "--out", str(tmp_path / "o")])
    assert_user_error(capsys, code, "Unknown model 'vgg99'", "cnn_a, cnn_b, cnn_c, resnet50")


def plant_bad_files(root):
    glioma = root / "Training" / "glioma_tumor"
    (glioma / "zero.jpg").write_bytes(b"")
    (glioma / "notes.jpg").write_text("this is not an image")
    whole = (glioma / "glioma_tumor_0000.jpg").read_bytes()
    (glioma / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (glioma / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "Training" / "README.txt").write_text("stray")
    return {"zero.jpg": "0 bytes", "notes.jpg": "not a readable image", "truncated.jpg": "truncated",
            ".DS_Store": "hidden file", "README.txt": "not inside a class folder"}


def test_bad_files_are_skipped_and_counted(make_data):
    root = make_data(3)
    expected = plant_bad_files(root)
    scanned = scan(find_layout(root), 16, progress=False)
    assert len(scanned.files) == 12
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in scanned.skipped}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])


def test_skips_appear_in_the_data_report_and_console_and_data_is_untouched(make_data, tmp_path, capsys):
    root = make_data(12)
    expected = plant_bad_files(root)
    before = tree_digest(root)
    assert train_cli(["--data", str(root)], tmp_path / "out", "--val-fraction", "0.25") == 0
    assert tree_digest(root) == before
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert report["skipped_count"] == len(expected)
    assert {item["path"].rsplit("/", 1)[-1] for item in report["skipped"]} == set(expected)
    out = capsys.readouterr().out
    assert f"48 images used, {len(expected)} skipped" in out
    assert "truncated.jpg" in out


# --- image modes ---------------------------------------------------------------------------------------------------

def gradient(mode_max=255, dtype=np.uint8):
    return (np.linspace(0, mode_max, 24 * 24).reshape(24, 24)).astype(dtype)


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P", "I;16"])
def test_every_mode_decodes_to_rgb_uint8(tmp_path, mode):
    if mode == "I;16":
        image = Image.fromarray(gradient(4095, np.uint16))  # 12-bit data in a 16-bit PNG
    else:
        image = Image.fromarray(gradient(), "L").convert(mode)
    path = tmp_path / "image.png"
    image.save(path)
    decoded = decode_image(path, 16)
    assert decoded.mode == mode
    assert decoded.pixels.shape == (16, 16, 3) and decoded.pixels.dtype == np.uint8
    assert decoded.pixels.max() > 200 and decoded.pixels.min() < 30  # the full range survives, not clipped or black


def test_sixteen_bit_is_windowed_to_its_range():
    image = Image.fromarray(np.array([[1000, 2000], [3000, 5000]], np.uint16))
    pixels = np.asarray(to_rgb(image))
    assert pixels[..., 0].tolist() == [[0, 64], [128, 255]]


def test_transparency_is_flattened_onto_black():
    rgba = Image.new("RGBA", (2, 1), (200, 100, 50, 255))
    rgba.putpixel((1, 0), (255, 255, 255, 0))
    assert np.asarray(to_rgb(rgba)).tolist() == [[[200, 100, 50], [0, 0, 0]]]
    palette = Image.new("P", (2, 1), 1)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.info["transparency"] = 1
    assert np.asarray(to_rgb(palette)).max() == 0
