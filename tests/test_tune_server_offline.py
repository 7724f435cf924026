"""The server path of `brain-tumor tune`, what it decides without a server: the trial tasks' parameter names, the
base task's check, the per-trial iteration budget, the objective's scalar, the options it sets on the base task,
and its best.yaml (the local path's writer). The study itself: tests/server/test_tune_server.py."""

import math

import pytest
import yaml
from clearml.automation import DiscreteParameterRange, LogUniformParameterRange, UniformIntegerParameterRange

from brain_tumor.errors import UserError
from cli import main as cli
from pipelines.config import PipelineConfig
from pipelines.dag import expand
from pipelines.search_space import clearml_ranges, search_space
from pipelines.tune_server import (
    best_of,
    check_base,
    create_base,
    epochs_ceiling,
    objective_metric,
    trial_ranges,
    write_results,
)

SPACE = {name: r for name, r in search_space({"lr": "log:1e-4:1e-2", "patience": "int:2:4",
                                               "augment": "choice:none,light"}).items()
         if name in ("lr", "patience", "augment")}


def step_parameters(model="cnn_b") -> dict:
    """A train step task's parameters as the pipeline creates them: `kwargs/<argument>`, all strings."""
    (node,) = [n for n in expand([model]) if n.name == f"train_{model}"]
    return {"kwargs/node": node.name, **{f"kwargs/{k}": str(v) for k, v in node.kwargs.items()}}


def test_the_trial_ranges_are_the_training_steps_arguments():
    ranges = {r.name: r for r in trial_ranges(SPACE)}
    assert set(ranges) == {f"kwargs/{name}" for name in SPACE}
    assert set(ranges) <= set(step_parameters())  # each names an argument the base task has
    lr = ranges["kwargs/lr"]
    assert isinstance(lr, LogUniformParameterRange)
    assert (lr.min_value, lr.max_value) == pytest.approx((math.log10(1e-4), math.log10(1e-2)))  # exponents of 10
    assert isinstance(ranges["kwargs/patience"], UniformIntegerParameterRange)
    assert isinstance(ranges["kwargs/augment"], DiscreteParameterRange)
    assert ranges["kwargs/augment"].values == ["none", "light"]
    assert {r.name for r in clearml_ranges(SPACE)} == {f"Args/{name}" for name in SPACE}  # a pipeline's, unchanged


def test_the_base_task_must_be_the_models_training_step():
    assert check_base(step_parameters(), "cnn_b", SPACE, {"epochs": 1}) == []
    (problem,) = check_base(step_parameters("cnn_a"), "cnn_b", SPACE, {})
    assert "not a train_cnn_b step task" in problem
    parameters = {k: v for k, v in step_parameters().items() if k != "kwargs/lr"}
    assert "no argument lr" in check_base(parameters, "cnn_b", SPACE, {})[0]


def test_a_trial_is_never_cut_short_below_its_epochs():
    assert epochs_ceiling(search_space({"epochs": "int:3:9"}), {}, {}) == 9
    assert epochs_ceiling(SPACE, {"epochs": 2}, {"kwargs/epochs": "20"}) == 2
    assert epochs_ceiling(SPACE, {}, {"kwargs/epochs": "7"}) == 7


def test_the_objective_is_a_scalar_the_training_reports_per_epoch():
    assert objective_metric("val_macro_f1") == ("macro F1", "validation")
    assert objective_metric("val_accuracy") == ("accuracy", "validation")
    with pytest.raises(UserError, match="reports per epoch"):
        objective_metric("val_loss")


def test_the_typed_training_options_are_set_on_the_base_task_and_nothing_else():
    argv = ["tune", "--server", "--base-task", "x", "--model", "cnn_b", "--epochs", "2", "--image-size", "32",
            "--allow-cpu", "--out", "somewhere", "--project", "tune-tests"]
    args = cli.build_parser().parse_args(argv)
    args.typed = cli.typed_options(argv)
    config, own, space = cli.tune_arguments(args)
    assert cli.fixed_training_values(args, config, own["model"]) == {"epochs": 2, "image_size": 32,
                                                                      "allow_cpu": True}
    assert "epochs" not in space  # given a value: held at it, not searched


def test_the_server_study_writes_the_local_studys_best_yaml(tmp_path):
    config = PipelineConfig.from_values({"run_dir": str(tmp_path), "epochs": 1, "models": "cnn_b"})
    rows = [{"number": 0, "task": "a", "status": "completed", "objective": 0.5, "epochs_run": 1,
             "lr": "0.001", "patience": "3", "augment": "none"},
            {"number": 1, "task": "b", "status": "completed", "objective": 0.75, "epochs_run": 1,
             "lr": "0.0002", "patience": "4", "augment": "light"},
            {"number": 2, "task": "c", "status": "failed", "objective": None, "epochs_run": None,
             "lr": "0.003", "patience": "2", "augment": "none"}]
    assert best_of(rows)["task"] == "b"
    values = write_results(tmp_path, rows, SPACE, config, "val_macro_f1", say=lambda *a: None)
    written = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert written == values
    assert (written["lr"], written["patience"], written["augment"], written["epochs"]) == (0.0002, 4, "light", 1)
    assert "task b" in (tmp_path / "best.yaml").read_text()
    header = (tmp_path / "trials.csv").read_text().splitlines()[0]
    assert header == ",".join(["number", "task", "status", "objective", "epochs_run", *SPACE])
    assert best_of([rows[2]]) is None  # no trial completed: no best.yaml


def test_a_study_without_a_base_task_or_data_says_what_it_needs():
    """Without --base-task the study makes its base from the data: with neither, one clear error, before any
    server call."""
    with pytest.raises(UserError, match="--base-task ID .* or the data to make one: --data ROOT"):
        create_base(PipelineConfig(), "cnn_b", say=lambda *a: None)


def test_the_base_run_is_a_pipeline_of_the_one_model_whose_train_step_is_the_base(monkeypatch, tmp_path):
    """The base comes from `launch --controller-local` of the study's model alone on the study's configuration, and
    is the train step its controller recorded (the id the launch wrote to `record`)."""
    import pipelines.launch
    from clearml import Task

    seen = {}

    def launch(config, mode, record):
        seen.update(models=config.models, mode=mode, epochs=config.epochs)
        record.write_text("pipeline-1")
        return 0

    class Controller:
        def get_configuration_object(self, name):
            assert name == "Pipeline"
            return '{"train_cnn_b": {"job_id": "task-7"}, "evaluate": {"job_id": "task-8"}}'

    monkeypatch.setattr(pipelines.launch, "launch", launch)
    monkeypatch.setattr(Task, "get_task", staticmethod(lambda task_id: Controller() if task_id == "pipeline-1"
                                                       else None))
    config = PipelineConfig(data=str(tmp_path), models="cnn_a,cnn_b,cnn_c", epochs=3)
    assert create_base(config, "cnn_b", say=lambda *a: None) == "task-7"
    assert seen == {"models": "cnn_b", "mode": "controller-local", "epochs": 3}
