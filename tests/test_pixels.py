"""Decode once, read a batch at a time: the pixel file, the run's cache, and a training resumed from its checkpoint."""

import os
import subprocess
import sys

import numpy as np
import pytest

from brain_tumor.data import find_layout, scan
from brain_tumor.errors import UserError
from brain_tumor.experiment import load_prepared, pixel_cache, prepare_data
from brain_tumor.pixels import PixelFile, PixelWriter, Rows, batches
from brain_tumor.synthetic import write_dataset


def test_a_pixel_file_reads_back_exactly_the_rows_asked_for(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 5, 5, 3), dtype=np.uint8)
    writer = PixelWriter(tmp_path / "p.u8", (5, 5, 3))
    for image in images:
        writer.write(image)
    pixels = writer.finish(note="x")
    assert pixels.shape == (7, 5, 5, 3) and pixels.meta["note"] == "x"
    assert np.array_equal(pixels[3], images[3]) and np.array_equal(pixels[[6, 0, 2]], images[[6, 0, 2]])
    rows = Rows(pixels, [5, 1])
    assert np.array_equal(rows[:], images[[5, 1]]) and np.array_equal(rows[1], images[1])
    assert [len(b) for b in batches(Rows(pixels, range(7)), 3)] == [3, 3, 1]
    (tmp_path / "p.u8").write_bytes((tmp_path / "p.u8").read_bytes()[:-10])  # truncated by a full disk
    with pytest.raises(ValueError, match="holds"):
        PixelFile(tmp_path / "p.u8")


def test_the_run_decodes_once_and_every_later_read_comes_from_its_cache(tmp_path, monkeypatch):
    root = write_dataset(tmp_path / "data", 6, 0, size=40, seed=4)
    prepared = prepare_data(find_layout(root), 32, 0.2, 0.2, 0, tmp_path / "run", progress=False)
    assert isinstance(prepared.scanned.pixels, PixelFile) and pixel_cache(tmp_path / "run", 32, False).is_file()
    decoded = scan(find_layout(root), 32, progress=False).pixels  # the same images, in memory
    import brain_tumor.experiment as experiment

    monkeypatch.setattr(experiment, "scan", lambda *a, **k: pytest.fail("decoded again"))
    again = load_prepared(tmp_path / "run" / "manifest.csv", 32)
    assert np.array_equal(again.scanned.pixels[:], decoded)
    pixels, labels = again.subset("val")
    assert isinstance(pixels, Rows) and len(pixels) == len(labels) == int((again.splits == "val").sum())


def test_an_image_changed_after_registration_is_a_clear_error(tmp_path):
    root = write_dataset(tmp_path / "data", 6, 0, size=40, seed=4)
    prepare_data(find_layout(root), 32, 0.2, 0.2, 0, tmp_path / "run", progress=False)
    changed = sorted((root / "Training" / "no_tumor").iterdir())[0]
    changed.write_bytes(changed.read_bytes()[:-1] + b"\0")
    with pytest.raises(UserError, match=f"The data changed since .*manifest.csv was written: 1 files.*{changed.name}"):
        load_prepared(tmp_path / "run" / "manifest.csv", 32)


MEMORY = """
import json, resource, sys, tempfile
from pathlib import Path
import numpy as np
from brain_tumor.pixels import PixelWriter, Rows
from brain_tumor.recipe import SEED
from brain_tumor.models import build_model
from brain_tumor.training import TrainConfig, fit
from dataclasses import replace
n = int(sys.argv[1])
rng = np.random.default_rng(0)
writer = PixelWriter(Path(sys.argv[2]) / f"p{n}.u8", (128, 128, 3))
for _ in range(n):
    writer.write(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
pixels = writer.finish()
labels = np.arange(n) % 4
recipe = replace(SEED, epochs=1, augment="none", lr=1e-3)
fit(build_model("cnn_b", 128, 4), (Rows(pixels, range(n - 64)), labels[:-64]), (Rows(pixels, range(n - 64, n)),
    labels[-64:]), 4, TrainConfig(recipe, 32, 0, "none"), verbose=0)
print("PEAK=" + str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def test_training_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """Measured without oneDNN's kernels: on a CPU with AVX512_BF16 their peak memory varies by ±40 MB between
    identical runs (1,067 to 1,147 MB here, 1,600 images peaking below 800 in one run), with no trend in the number
    of images; without them the same runs peak within 1 MB. What this test checks is the data path: images are read
    batch by batch, never held whole."""
    peaks = {}
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    for n in (400, 800):
        out = subprocess.run([sys.executable, "-c", MEMORY, str(n), str(tmp_path)], capture_output=True, text=True,
                             timeout=600, env=env)
        line = next((x for x in out.stdout.splitlines() if x.startswith("PEAK=")), None)
        assert line, out.stderr[-2000:]
        peaks[n] = int(line[5:]) * 1024
    extra = 400 * 128 * 128 * 3  # what 400 more images weigh in memory (19.7 MB): held whole, they would show
    assert peaks[800] - peaks[400] < 0.5 * extra, peaks
