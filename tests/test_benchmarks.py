"""The benchmark scripts run end to end on a tiny synthetic set (their numbers live in benchmarks/README.md)."""

import csv
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recipe_study_trains_from_the_pixel_cache_and_appends_its_row(make_data, tmp_path, monkeypatch):
    study = load("recipe_study")
    monkeypatch.setattr(study, "VARIANTS", {"tiny": replace(study.BASE, epochs=1, warmup_epochs=0, augment="none")})
    out = tmp_path / "study.csv"
    monkeypatch.setattr(sys, "argv", ["recipe_study.py", "--data", str(make_data(train_per_class=12, size=32)),
                                      "--out", str(out), "--models", "cnn_a", "--variants", "tiny",
                                      "--image-size", "32"])
    study.main()  # trains after the data is prepared: the cache it reads must still exist
    (row,) = csv.DictReader(out.open())
    assert (row["variant"], row["model"], row["epochs_run"]) == ("tiny", "cnn_a", "1")
    assert 0 <= float(row["val_macro_f1"]) <= 1
