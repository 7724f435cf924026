"""The local pipeline end to end on synthetic data: artifacts, consistency, reuse, --force, failure and resume."""

import json
import zipfile

import pandas as pd
import pytest
from conftest import FAST

from brain_tumor.models import read_metadata
from cli.main import main
from pipelines.config import PipelineConfig
from pipelines.local_runner import run_pipeline


def test_every_step_ran_and_left_its_files(first_run):
    run_dir, runs = first_run
    assert [(r.name, r.status) for r in runs] == [
        ("register_dataset", "ran"), ("class_weights", "ran"), ("baselines", "ran"), ("train_cnn_a", "ran"),
        ("train_cnn_b", "ran"), ("train_resnet50", "ran"), ("evaluate", "ran"), ("ensemble", "ran"),
        ("select_champion", "ran")]
    for name in ("manifest.csv", "data_report.json", "class_weights.json", "comparison.csv", "comparison.md",
                 "champion.keras", "champion.json", "summary.md", "run.json"):
        assert (run_dir / name).is_file(), name
    for model in ("cnn_a", "cnn_b", "resnet50"):
        for name in ("model.keras", "history.json", "history.csv", "training.json"):
            assert (run_dir / "models" / model / name).is_file()
        assert (run_dir / "metrics" / f"{model}.json").is_file()
    for run in runs:
        assert (run_dir / "steps" / run.name / "log.txt").is_file()


def test_one_offline_clearml_session_per_step(first_run):
    run_dir, runs = first_run
    sessions = sorted((run_dir / "clearml" / "offline").glob("*.zip"))
    assert len(sessions) == len(runs)
    names = set()
    for session in sessions:
        with zipfile.ZipFile(session) as archive:
            names.add(json.loads(archive.read("task.json"))["name"])
    assert names == {r.name for r in runs}
    train_session = next(s for s in sessions
                         if json.loads(zipfile.ZipFile(s).read("task.json"))["name"] == "train_cnn_a")
    scalars = zipfile.ZipFile(train_session).read("metrics.jsonl").decode()
    assert '"metric": "accuracy"' in scalars and '"variant": "validation"' in scalars  # per-epoch curves


def test_the_table_and_the_champion_are_consistent(first_run):
    run_dir, _ = first_run
    table = pd.read_csv(run_dir / "comparison.csv")
    models = {"cnn_a", "cnn_b", "resnet50"}
    assert models | {"baseline_knn", "baseline_logreg"} <= set(table["model"]) <= models | {
        "ensemble", "baseline_knn", "baseline_logreg"}
    assert table["test_acc"].notna().all() and table["test_macro_f1"].notna().all()
    assert (table["val_macro_f1_low"] <= table["val_macro_f1"]).all()
    assert (table["val_macro_f1"] <= table["val_macro_f1_high"]).all()
    champion = json.loads((run_dir / "champion.json").read_text())
    candidates = table[table["family"] != "baseline"]  # baselines are compared, never chosen
    best = candidates.sort_values(["val_macro_f1", "params_total"], ascending=[False, True]).iloc[0]
    assert champion["champion"] == best["model"] == table.loc[table["champion"], "model"].item()
    champion_bytes = (run_dir / "champion.keras").read_bytes()
    assert champion_bytes == (run_dir / "models" / champion["champion"] / "model.keras").read_bytes()
    assert read_metadata(run_dir / "champion.keras")["model_name"] == champion["champion"]
    for model in table["model"]:
        metrics = json.loads((run_dir / "metrics" / f"{model}.json").read_text())
        row = table.set_index("model").loc[model]
        assert row["val_macro_f1"] == pytest.approx(metrics["val"]["macro_f1"])
        assert row["test_acc"] == pytest.approx(metrics["test"]["accuracy"])
    assert f"**{champion['champion']}**" in (run_dir / "summary.md").read_text()


def test_every_step_after_registration_used_the_same_dataset_hash(first_run):
    run_dir, runs = first_run
    digest = json.loads((run_dir / "steps" / "register_dataset" / "result.json").read_text())["result"]["dataset_hash"]
    for run in runs[1:-1]:
        call = json.loads((run_dir / "steps" / run.name / "call.json").read_text())
        assert call["kwargs"]["dataset_hash"] == digest
    assert json.loads((run_dir / "metrics" / "cnn_a.json").read_text())["dataset_hash"] == digest


def test_a_rerun_reuses_every_step_and_trains_nothing(first_run, pipeline_data):
    run_dir, _ = first_run
    model = run_dir / "models" / "cnn_a" / "model.keras"
    before = model.stat().st_mtime_ns
    runs = run_pipeline(PipelineConfig.from_values(data=str(pipeline_data), models="cnn_a,cnn_b,resnet50",
                                                   run_dir=str(run_dir), **FAST), quiet=True)
    assert {r.status for r in runs} == {"reused"}
    assert model.stat().st_mtime_ns == before


def test_a_changed_parameter_reruns_only_what_depends_on_it(first_run, pipeline_data):
    run_dir, _ = first_run
    config = PipelineConfig.from_values(data=str(pipeline_data), models="cnn_a,cnn_b,resnet50", run_dir=str(run_dir),
                                        **FAST, champion_metric="val_loss")
    runs = run_pipeline(config, quiet=True)
    assert [r.name for r in runs if r.status == "ran"] == ["select_champion"]
    assert json.loads((run_dir / "champion.json").read_text())["metric"] == "val_loss"


def test_failure_keeps_what_finished_and_a_rerun_resumes(pipeline_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["run", "--data", str(pipeline_data), "--models", "cnn_b,resnet50", "--out", str(run_dir),
            "--epochs", "1", "--image-size", "32"]
    missing = tmp_path / "no-such-weights.h5"
    assert main([*args, "--weights", str(missing)]) == 1
    err = capsys.readouterr().err
    log = run_dir / "steps" / "train_resnet50" / "log.txt"
    assert "error: step train_resnet50 failed (exit code 2: a problem with the input)" in err
    assert str(log) in err and "ResNet50 weights not found" in err  # the step's own message, from its log
    assert "Kept: register_dataset, class_weights, baselines, train_cnn_b" in err
    assert "Not run: evaluate, ensemble, select_champion" in err
    assert "Traceback" not in err
    assert (run_dir / "models" / "cnn_b" / "model.keras").is_file()
    assert not (run_dir / "comparison.csv").exists()

    assert main([*args, "--weights", "none"]) == 0
    statuses = {s["name"]: s["status"] for s in json.loads((run_dir / "run.json").read_text())["steps"]}
    assert statuses == {"register_dataset": "reused", "class_weights": "reused", "baselines": "reused",
                        "train_cnn_b": "reused", "train_resnet50": "ran", "evaluate": "ran", "ensemble": "ran",
                        "select_champion": "ran"}


def test_force_reruns_a_step_that_finished_with_the_same_key(tmp_path):
    from pipelines.local_runner import reusable

    step = tmp_path / "steps" / "evaluate"
    step.mkdir(parents=True)
    (tmp_path / "out.json").write_text("{}")
    (step / "call.json").write_text(json.dumps({"key": "k1"}))
    (step / "result.json").write_text(json.dumps({"result": {"path": str(tmp_path / "out.json")}, "seconds": 1}))
    assert reusable(step, "k1", str(tmp_path), force=False)["seconds"] == 1
    assert reusable(step, "k1", str(tmp_path), force=True) is None
    assert reusable(step, "k2", str(tmp_path), force=False) is None  # another key: code, arguments or data changed
    (tmp_path / "out.json").unlink()
    assert reusable(step, "k1", str(tmp_path), force=False) is None  # a file it made is gone


def test_an_unknown_model_stops_before_any_step(pipeline_data, tmp_path, capsys):
    assert main(["run", "--data", str(pipeline_data), "--models", "cnn_a,vgg19", "--out", str(tmp_path / "r")]) == 2
    assert "unknown model(s) 'vgg19'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "steps").exists()
