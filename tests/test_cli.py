"""The CLI end to end on synthetic data: train, evaluate (folder and manifest split), demo, and errors from a shell."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from brain_tumor.models import read_metadata
from cli.main import main


@pytest.fixture(scope="module")
def trained_run(learnable_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--data", str(learnable_data), "--model", "cnn_b", "--epochs", "3", "--image-size", "32",
                 "--lr", "1e-3", "--batch-size", "16", "--val-fraction", "0.2", "--seed", "7", "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_a_complete_consistent_run(trained_run, learnable_data):
    for name in ("model.keras", "metrics.json", "history.json", "history.csv", "manifest.csv", "data_report.json"):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    manifest = pd.read_csv(trained_run / "manifest.csv")
    counts = manifest["split"].value_counts()
    assert metrics["val"]["samples"] == counts["val"] and metrics["test"]["samples"] == counts["test"] == 80
    assert metrics["train"]["samples"] == counts["train"]
    assert metrics["epochs_run"] == len(json.loads((trained_run / "history.json").read_text())) == 3
    assert metrics["params"]["total"] > metrics["params"]["trainable"] > 0
    assert metrics["spec"] == {"name": "cnn_b", "filters": [16, 32, 64, 128], "kernel_size": 3, "dropout": 0.5,
                               "batch_size": 64, "family": "custom_cnn", "backbone": "", "preprocess": "",
                               "weights_file": ""}
    assert metrics["batch_size"] == 16 and metrics["seed"] == 7 and metrics["recipe"]["optimizer"] == "adamw"
    assert metrics["overfitting"]["gap"] == pytest.approx(metrics["train"]["accuracy"] - metrics["val"]["accuracy"])
    # Testing/ is the test set; validation was carved from Training only
    test_files = manifest.loc[manifest["split"] == "test", "file"]
    assert test_files.str.contains("/Testing/").all()
    assert not manifest.loc[manifest["split"] != "test", "file"].str.contains("/Testing/").any()
    metadata = read_metadata(trained_run / "model.keras")
    assert metadata["class_names"] == ["glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"]
    assert metadata["image_size"] == 32 and metadata["model_name"] == "cnn_b"


def test_evaluate_a_folder_matches_the_training_run(trained_run, learnable_data, capsys, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(trained_run / "model.keras"), str(learnable_data), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    recorded = json.loads((trained_run / "metrics.json").read_text())["test"]
    assert results["samples"] == 80  # ROOT with Testing/: evaluated on Testing/
    assert results["accuracy"] == pytest.approx(recorded["accuracy"])
    assert results["confusion_matrix"] == recorded["confusion_matrix"]
    assert "macro F1" in capsys.readouterr().out


def test_evaluate_a_manifest_split(trained_run, tmp_path):
    out = tmp_path / "val.json"
    assert main(["evaluate", str(trained_run / "model.keras"), str(trained_run / "manifest.csv"),
                 "--split", "val", "--out", str(out)]) == 0
    recorded = json.loads((trained_run / "metrics.json").read_text())["val"]
    assert json.loads(out.read_text())["macro_f1"] == pytest.approx(recorded["macro_f1"])


def test_evaluate_refuses_a_manifest_without_split(trained_run, capsys):
    assert main(["evaluate", str(trained_run / "model.keras"), str(trained_run / "manifest.csv")]) == 2
    assert "needs --split" in capsys.readouterr().err


def test_evaluate_refuses_a_file_that_is_not_our_model(tmp_path, learnable_data, capsys):
    fake = tmp_path / "model.keras"
    fake.write_text("not a zip")
    assert main(["evaluate", str(fake), str(learnable_data)]) == 2
    assert "not a model saved by this project" in capsys.readouterr().err


def test_demo_runs_the_pipeline_and_a_second_demo_reuses_it(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path / "demo"), "--models", "cnn_a,cnn_b", "--epochs", "1",
            "--image-size", "32"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Generated a synthetic 4-class dataset" in out and "Champion:" in out
    for name in ("summary.md", "comparison.csv", "champion.keras", "champion.json"):
        assert (tmp_path / "demo" / name).is_file()
    assert main(args) == 0
    assert capsys.readouterr().out.count("reused") == 8  # every step: 2 trainings, baselines, ensemble, …


def test_errors_from_a_shell_have_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cli", "train", "--data", str(tmp_path / "missing")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: Data folder not found: {tmp_path / 'missing'}" in result.stderr
