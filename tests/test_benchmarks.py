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


def test_a_studys_best_file_is_compared_with_the_default_per_seed_on_the_same_images(make_data, tmp_path,
                                                                                     monkeypatch, capsys):
    """`--best FILE` trains the file's recipe over the default; `--compare` pairs the two runs of each seed on the
    same validation images: the full-set difference is the difference of the two rows' macro-F1."""
    study = load("recipe_study")
    tiny = replace(study.BASE, epochs=1, warmup_epochs=0, augment="none")
    monkeypatch.setattr(study, "default_recipe", lambda: tiny)
    best = tmp_path / "best.yaml"
    best.write_text("lr: 0.01\nlabel_smoothing: 0.0\nmodel: cnn_a  # not a recipe field: ignored\n")
    out = tmp_path / "best.csv"
    monkeypatch.setattr(sys, "argv", ["recipe_study.py", "--data", str(make_data(train_per_class=12, size=32)),
                                      "--out", str(out), "--models", "cnn_a", "--variants", "default,best",
                                      "--best", str(best), "--seeds", "0,1", "--image-size", "32",
                                      "--precision", "float32", "--compare", "best,default"])
    study.main()
    rows = list(csv.DictReader(out.open()))
    assert [(r["variant"], r["seed"]) for r in rows] == [("default", "0"), ("default", "1"), ("best", "0"),
                                                         ("best", "1")]
    assert "'lr': 0.01" in rows[2]["recipe"] and "'lr': 0.001" in rows[0]["recipe"]
    printed = capsys.readouterr().out
    for seed in ("0", "1"):
        f1 = {r["variant"]: float(r["val_macro_f1"]) for r in rows if r["seed"] == seed}
        line = next(line for line in printed.splitlines() if line.strip().startswith(f"cnn_a seed {seed}:"))
        assert abs(float(line.split(":")[1].split()[0]) - (f1["best"] - f1["default"])) < 2e-3, line
    assert "mean difference" in printed
