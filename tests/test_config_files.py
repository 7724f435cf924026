"""Configuration files (`--config FILE`, YAML or JSON) and the search space declared with the parameters: what
wins over what, every problem in one message, syntax errors with their line and column, and the record a run keeps
of the file it started from. No training here."""

import json

import pytest

from brain_tumor.errors import UserError
from cli import main as cli
from pipelines.config import PipelineConfig
from pipelines.search_space import clearml_ranges, declared, search_space


@pytest.fixture
def started(monkeypatch):
    """What `brain-tumor run` would start: the configuration and the file record it hands the runner."""
    calls = []
    monkeypatch.setattr(cli, "run_and_report", lambda config, config_file=None: calls.append((config, config_file)))
    return calls


def test_the_command_line_wins_over_the_file_and_the_file_over_the_defaults(tmp_path, started):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\nlr: 0.01\ncrop: true\nimage-size: 64\nout: runs/from-file\nmodels: cnn_a,cnn_b\n")
    assert cli.main(["run", "--config", str(path), "--epochs", "3", "--no-crop", "--models", "cnn_c"]) == 0
    (config, record), = started
    assert (config.epochs, config.crop, config.model_names()) == (3, False, ["cnn_c"])  # typed: the command line
    assert (config.lr, config.image_size, config.run_dir) == (0.01, 64, "runs/from-file")  # the file
    assert (config.patience, config.augment) == (6, "none")  # neither: the defaults
    assert record == {"path": str(path.resolve()), "text": path.read_text()}


def test_an_option_typed_with_its_default_value_still_wins_over_the_file(tmp_path, started):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\n")
    cli.main(["run", "--config", str(path), "--epochs", "20"])  # 20 is the default, but typed
    assert started[0][0].epochs == 20


def test_json_files_work_the_same(tmp_path, started):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"epochs": 4, "label_smoothing": 0.05, "normalize": True}))
    cli.main(["run", "--config", str(path)])
    config = started[0][0]
    assert (config.epochs, config.label_smoothing, config.normalize) == (4, 0.05, True)


def test_unknown_keys_and_bad_values_are_one_message(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: ten\ncolour: red\nimage_size: 8\naugment: heavy\nlr: 0\n")
    assert cli.main(["run", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("error:") == 1 and str(path) in error
    for expected in ("epochs: 'ten' is not an int", "unknown parameter 'colour'", "image_size: 8",
                     "augment: 'heavy' is not one of", "lr: 0.0"):
        assert expected in error, expected


@pytest.mark.parametrize("name, text, where", [
    ("broken.yaml", "epochs: 3\nlr: [0.1\nseed: 1\n", "line 3, column 5"),
    ("broken.json", '{"epochs": 3,\n "lr": }', "line 2, column 8"),
])
def test_a_syntax_error_names_the_file_line_and_column(tmp_path, capsys, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    assert cli.main(["run", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"{path}, {where}" in error, error


def test_a_file_of_another_shape_or_suffix_is_refused(tmp_path, capsys):
    (tmp_path / "list.yaml").write_text("- epochs\n- 3\n")
    (tmp_path / "run.toml").write_text("epochs = 3\n")
    (tmp_path / "search.yaml").write_text("search:\n  lr: log:1e-4:1e-3\n")
    assert cli.main(["run", "--config", str(tmp_path / "list.yaml")]) == 2
    assert "holds a mapping of parameter names" in capsys.readouterr().err
    assert cli.main(["run", "--config", str(tmp_path / "run.toml")]) == 2
    assert ".yaml, .yml or .json" in capsys.readouterr().err
    assert cli.main(["run", "--config", str(tmp_path / "search.yaml")]) == 2  # a search space is for tune
    assert "only `brain-tumor tune` reads a search space" in capsys.readouterr().err
    assert cli.main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_a_local_run_records_the_file_it_started_from(tmp_path, make_data, monkeypatch):
    import pipelines.local_runner as runner
    from pipelines import summary

    monkeypatch.setattr(runner, "expand", lambda models: [])  # no steps: only what the run records
    monkeypatch.setattr(summary, "write_summary", lambda *a, **k: None)
    config = PipelineConfig.from_values(data=str(make_data()), run_dir=str(tmp_path / "run"))
    runner.run_pipeline(config, quiet=True, config_file={"path": "/x/best.yaml", "text": "epochs: 3\n"})
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["config_file"] == {"path": "/x/best.yaml", "text": "epochs: 3\n"}


def test_launch_hands_the_file_to_the_controller(tmp_path, make_data, monkeypatch):
    """The controller stores it as a configuration object (pipelines/clearml_pipeline.py main); here: that it
    receives it."""
    import pipelines.launch as launching

    seen = {}
    monkeypatch.setattr(launching, "check_server", lambda queues=(): None)
    monkeypatch.setattr(launching, "register_version", lambda *a, **k: "dataset-id")
    monkeypatch.setattr(launching.subprocess, "run", lambda argv, env: seen.update(
        json.loads(env[launching.LAUNCH_ENV])) or type("Done", (), {"returncode": 0}))
    path = tmp_path / "launch.yaml"
    path.write_text("epochs: 5\n")
    assert cli.main(["launch", "--config", str(path), "--data", str(make_data())]) == 0
    assert seen["parameters"]["epochs"] == 5 and seen["config_file"]["text"] == "epochs: 5\n"


def test_each_tunable_parameter_declares_its_range_and_the_help_shows_it(capsys):
    space = declared()
    assert set(space) == {"lr", "weight_decay", "schedule", "warmup_epochs", "label_smoothing", "augment",
                          "batch_size", "epochs", "patience", "crop", "normalize", "optimizer"}
    assert (space["lr"].kind, space["lr"].low, space["lr"].high) == ("log", 1e-5, 1e-2)
    assert space["crop"].choices == (False, True)
    with pytest.raises(SystemExit):
        cli.main(["tune", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "uniform 1e-05 to 0.01]" in help_text and "[tune: one of 16, 32, 64]" in help_text


def test_the_user_narrows_and_widens_ranges_and_fixes_parameters():
    space = search_space({"lr": "log:1e-4:3e-3", "augment": "choice:none,light", "batch_size": ["choice", [8, 128]],
                          "label-smoothing": "uniform:0:0.3"}, fixed={"epochs"})
    assert (space["lr"].low, space["lr"].high) == (1e-4, 3e-3)
    assert space["augment"].choices == ("none", "light") and space["batch_size"].choices == (8, 128)
    assert space["label_smoothing"].high == 0.3  # wider than declared: allowed
    assert "epochs" not in space  # given a value: held at it


def test_ranges_outside_what_a_parameter_accepts_are_refused_together():
    with pytest.raises(UserError) as caught:
        search_space({"lr": "log:0:1", "label_smoothing": "uniform:0:0.7", "augment": "choice:none,heavy",
                      "seed": "int:1:5", "colour": "int:1:2", "epochs": "uniform:1:5", "patience": "int:8:2",
                      "weight_decay": "gauss:0:1"}, fixed={"batch_size"} | set())
    message = str(caught.value)
    for expected in ("search lr: 0 is outside what lr accepts", "search label_smoothing: 0.7 is outside",
                     "search augment: heavy is outside", "search seed: is not a tunable parameter",
                     "search colour: is not a parameter", "epochs is an integer: use int:1:5",
                     "low end 8 is not below the high end 2", "unknown kind 'gauss'"):
        assert expected in message, expected
    with pytest.raises(UserError, match="also given a value"):
        search_space({"lr": "log:1e-4:1e-3"}, fixed={"lr"})


def test_tune_reports_bad_options_file_and_ranges_in_one_message(tmp_path, capsys):
    path = tmp_path / "tune.yaml"
    path.write_text("epochs: ten\ntrials: 0\nsearch:\n  lr: log:-1:1\n")
    code = cli.main(["tune", "--config", str(path), "--search", "augment=choice:heavy", "--objective", "test_f1",
                     "--model", "vgg", "--data", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("error:") == 1
    for expected in ("epochs: 'ten' is not an int", "trials: 0", "objective: 'test_f1'", "model: 'vgg'",
                     "search lr: -1 is outside", "search augment: heavy is outside"):
        assert expected in error, expected


def test_the_space_as_clearml_optimizer_ranges():
    from clearml.automation import DiscreteParameterRange, LogUniformParameterRange, UniformIntegerParameterRange

    ranges = {r.name: r for r in clearml_ranges(declared())}
    assert isinstance(ranges["Args/lr"], LogUniformParameterRange)
    assert (ranges["Args/lr"].min_value, ranges["Args/lr"].max_value) == pytest.approx((-5, -2))
    assert isinstance(ranges["Args/patience"], UniformIntegerParameterRange)
    assert isinstance(ranges["Args/augment"], DiscreteParameterRange)
