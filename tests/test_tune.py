"""`brain-tumor tune` without a server, on generated data: a study of three trials in two runs of the command
(the second continues the first), its records, its best configuration file, pruning, and the folder rules."""

import json

import optuna
import pandas as pd
import pytest
import yaml

from brain_tumor.errors import UserError
from cli import main as cli
from pipelines.config import PipelineConfig
from pipelines.search_space import search_space
from pipelines.tune import STUDY, requeue_interrupted, storage_url, tune

LR = (1e-4, 1.2e-4)  # a narrow range: every trial must stay inside it
COMMON = ["--model", "cnn_b", "--epochs", "2", "--image-size", "32", "--weights", "none", "--warmup-epochs", "0",
          "--search", f"lr=log:{LR[0]}:{LR[1]}", "--search", "augment=choice:none,light"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One trial, then the same command with --trials 3: the study continues (data with a Testing/ folder)."""
    from brain_tumor.synthetic import write_dataset

    root = tmp_path_factory.mktemp("tune")
    data = write_dataset(root / "data", 10, 3, size=32, seed=0)
    out = root / "study"
    argv = ["tune", "--data", str(data), "--out", str(out), *COMMON]
    assert cli.main([*argv, "--trials", "1"]) == 0
    first = json.loads((out / "trials" / "0000" / "result.json").read_text())
    first_mtime = (out / "trials" / "0000" / "result.json").stat().st_mtime_ns
    assert cli.main([*argv, "--trials", "3"]) == 0
    return data, out, first, first_mtime


def test_every_trial_is_recorded_and_the_first_is_not_repeated(study):
    _, out, first, first_mtime = study
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials["number"]) == [0, 1, 2] and set(trials["status"]) == {"complete"}
    assert {"objective", "epochs_run", "seconds", "lr", "augment", "batch_size"} <= set(trials.columns)
    assert (trials["epochs_run"] == 2).all() and trials["objective"].between(0, 1).all()
    # the first run's trial is kept as it was: not run again by the second command
    assert (out / "trials" / "0000" / "result.json").stat().st_mtime_ns == first_mtime
    assert trials.loc[0, "objective"] == pytest.approx(first["value"])
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001", "0002"]
    study_db = optuna.load_study(study_name=STUDY, storage=storage_url(out))
    assert len(study_db.trials) == 3


def test_the_search_space_reaches_the_trials(study):
    _, out, _, _ = study
    for folder in sorted((out / "trials").iterdir()):
        call = json.loads((folder / "trial.json").read_text())
        trained = json.loads((folder / "models" / "cnn_b" / "training.json").read_text())
        assert LR[0] <= call["params"]["lr"] <= LR[1]
        assert trained["recipe"]["lr"] == pytest.approx(call["params"]["lr"])  # what the training step used
        assert trained["recipe"]["augment"] in ("none", "light")
        assert trained["recipe"]["epochs"] == 2 and "epochs" not in call["params"]  # typed: fixed, not searched


def test_the_test_split_is_never_read(study):
    _, out, _, _ = study
    registered = pd.read_csv(out / "registered" / "manifest.csv")
    test_files = set(registered.loc[registered["split"] == "test", "file"])
    assert len(test_files) == 12  # Testing/: 3 per class
    tuning = pd.read_csv(out / "split" / "manifest.csv")
    assert "test" not in set(tuning["split"]) and not test_files & set(tuning["file"])
    val_files = set(registered.loc[registered["split"] == "val", "file"])
    for folder in (out / "trials").iterdir():
        call = json.loads((folder / "trial.json").read_text())
        assert call["kwargs"]["manifest"] == str(out / "split" / "manifest.csv")  # the trials see only this
        assert set(pd.read_csv(folder / "val_predictions.csv")["file"]) == val_files
    for meta in (out / "split" / "cache").glob("*.json"):  # the trials decoded the training and validation images
        assert json.loads(meta.read_text())["shape"][0] == len(tuning)
    assert not (out / "registered" / "cache").exists()  # the full decode is gone; the trials' holds no test image


def test_the_best_configuration_file_starts_a_run(study, monkeypatch):
    data, out, _, _ = study
    best = yaml.safe_load((out / "best.yaml").read_text())
    trials = pd.read_csv(out / "trials.csv")
    winner = trials.loc[trials["objective"].idxmax()]
    assert best["lr"] == pytest.approx(winner["lr"]) and best["models"] == "cnn_b" and best["epochs"] == 2
    assert PipelineConfig.from_values(best).lr == pytest.approx(winner["lr"])
    started = []
    monkeypatch.setattr(cli, "run_and_report", lambda config, config_file=None: started.append((config, config_file)))
    assert cli.main(["run", "--config", str(out / "best.yaml"), "--data", str(data)]) == 0
    (config, record), = started
    assert config.lr == pytest.approx(winner["lr"]) and config.model_names() == ["cnn_b"]
    assert config.data == str(data) and record["path"] == str((out / "best.yaml").resolve())


def test_the_report_says_the_best_score_is_optimistic_and_compares_the_runner_up(study):
    _, out, _, _ = study
    page = (out / "report.html").read_text()
    assert "optimistic" in page and "paired-bootstrap interval" in page and "runner-up" in page
    assert (out / "figures" / "history.png").is_file()
    assert "Parameter importances" in page and "Parallel coordinates" in page


def test_a_folder_holding_another_study_is_refused(study):
    data, out, _, _ = study
    config = PipelineConfig.from_values(data=str(data), run_dir=str(out), epochs=2, image_size=32, weights="none")
    with pytest.raises(UserError, match=r"(?s)holds another study .*objective: 'val_macro_f1' there, 'val_loss' now"):
        tune(config, "cnn_b", 4, "val_loss", search_space(fixed={"epochs"}), quiet=True)


def test_a_pruned_trial_is_recorded_as_pruned(make_data, tmp_path):
    config = PipelineConfig.from_values(data=str(make_data(10)), run_dir=str(tmp_path / "pruned"), epochs=2,
                                        image_size=32, weights="none", warmup_epochs=0)
    # macro-F1 never reaches 2: the threshold pruner stops the trial after its first epoch
    tune(config, "cnn_b", 1, "val_macro_f1", search_space({"lr": "log:1e-4:2e-4"}, fixed={"epochs"}),
         pruner={"kind": "threshold", "lower": 2.0}, quiet=True)
    trials = pd.read_csv(tmp_path / "pruned" / "trials.csv")
    assert list(trials["status"]) == ["pruned"] and list(trials["epochs_run"]) == [1]
    assert not (tmp_path / "pruned" / "best.yaml").exists()  # no complete trial: nothing to recommend
    assert "No trial completed yet" in (tmp_path / "pruned" / "report.html").read_text()


def test_a_trial_a_kill_interrupted_runs_again_and_does_not_count(tmp_path):
    study = optuna.create_study(study_name=STUDY, storage=storage_url(tmp_path))
    done = study.ask()
    done.suggest_float("lr", 1e-4, 1e-3)
    study.tell(done, 0.5)
    killed = study.ask()  # left running by a killed process
    lr = killed.suggest_float("lr", 1e-4, 1e-3)
    requeue_interrupted(study, lambda *a: None)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                      optuna.trial.TrialState.WAITING]
    assert study.trials[1].user_attrs["interrupted"]
    again = study.ask()
    assert again.suggest_float("lr", 1e-4, 1e-3) == lr


def test_a_searched_epochs_budget_and_the_epochs_a_trial_ran_are_two_columns():
    """trials.csv once held one `epochs` column for both: the searched budget overwrote what a pruned trial ran."""
    from pipelines.tune_report import trial_rows

    study = optuna.create_study(direction="maximize")
    trial = study.ask({"epochs": optuna.distributions.IntDistribution(5, 30)})
    trial.set_user_attr("epochs", 3)  # pruned after its third epoch
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    (row,) = trial_rows(study, search_space({"epochs": "int:5:30"}, fixed=set()))
    assert row["epochs_run"] == 3 and row["epochs"] == trial.params["epochs"] >= 5
