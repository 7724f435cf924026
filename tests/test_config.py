"""The typed configuration: the one source of every parameter's name, type, default and description."""

import pytest

from brain_tumor.errors import UserError
from cli.main import build_parser
from cli.options import flag
from pipelines.config import PipelineConfig, parameters
from pipelines.fingerprint import REPO_ROOT, code_files, code_fingerprint


def test_strings_as_the_web_ui_stores_them_become_the_declared_types():
    config = PipelineConfig.from_values({"epochs": "20", "lr": "1e-3", "force": "True", "image_size": "64.0",
                                         "allow_cpu": "false", "models": " cnn_b , cnn_a,cnn_b"})
    assert (config.epochs, config.lr, config.force, config.image_size, config.allow_cpu) == (20, 0.001, True, 64,
                                                                                              False)
    assert config.model_names() == ["cnn_b", "cnn_a"]


def test_every_problem_is_reported_at_once():
    with pytest.raises(UserError) as caught:
        PipelineConfig.from_values(models="cnn_a,vgg", epochs="ten", image_size=8, champion_metric="test_acc",
                                   val_fraction=0.6, test_fraction=0.5, lr=0, colour="red")
    message = str(caught.value)
    for expected in ("unknown parameter 'colour'", "epochs: 'ten' is not an int", "unknown model(s) 'vgg'",
                     "image_size: 8", "champion_metric: 'test_acc' is not one of val_macro_f1", "lr: 0.0",
                     "val_fraction + test_fraction below 1"):
        assert expected in message


def test_an_integer_parameter_refuses_a_fraction_and_a_flag_refuses_other_words():
    with pytest.raises(UserError, match="epochs: '2.5' is not an int"):
        PipelineConfig.from_values(epochs="2.5")
    with pytest.raises(UserError, match="force: 'maybe' is not a bool"):
        PipelineConfig.from_values(force="maybe")


@pytest.mark.parametrize("command, scope", [("run", "local"), ("launch", "server")])
def test_the_command_options_are_the_parameters_with_their_defaults(command, scope):
    parser = build_parser()
    args = parser.parse_args([command])
    for f in parameters(scope):
        assert getattr(args, f.name) == f.default, f.name
    assert {f.name for f in parameters()} - {f.name for f in parameters(scope)} == (
        {"max_parallel"} if scope == "server" else {"gpu_queue", "cpu_queue", "docker_image", "allow_cpu",
                                                  "stale_minutes"})
    help_text = " ".join(parser._subparsers._group_actions[0].choices[command].format_help().split())
    for f in parameters(scope):
        assert flag(f) in help_text and " ".join(f.metadata["help"].split()) in help_text


def test_editing_the_report_code_reruns_the_last_step_and_never_retrains():
    train = {p.name for p in code_files("steps.train_model")}
    last = {p.name for p in code_files("steps.select_champion")}
    assert "report.py" in last and "report.py" not in train
    assert {"training.py", "models.py", "executor.py", "config.py"} <= train


def test_the_report_templates_are_the_last_steps_code():
    last = {p.relative_to(REPO_ROOT).as_posix() for p in code_files("steps.select_champion")}
    train = {p.relative_to(REPO_ROOT).as_posix() for p in code_files("steps.train_model")}
    assert {"brain_tumor/templates/base.html", "brain_tumor/templates/sections/conclusion.html"} <= last
    assert not any(name.startswith("brain_tumor/templates/") for name in train)


def test_the_code_fingerprint_follows_the_files_a_step_imports(tmp_path):
    (tmp_path / "steps").mkdir()
    (tmp_path / "brain_tumor").mkdir()
    (tmp_path / "steps" / "__init__.py").write_text("")
    (tmp_path / "brain_tumor" / "__init__.py").write_text("")
    (tmp_path / "steps" / "a.py").write_text("from brain_tumor.b import f\n\ndef step():\n    from . import c\n")
    (tmp_path / "steps" / "c.py").write_text("X = 1\n")
    (tmp_path / "brain_tumor" / "b.py").write_text("def f(): pass\n")
    (tmp_path / "brain_tumor" / "unused.py").write_text("Y = 1\n")
    assert {p.relative_to(tmp_path).as_posix() for p in code_files("steps.a", tmp_path)} == {
        "steps/__init__.py", "steps/a.py", "steps/c.py", "brain_tumor/__init__.py", "brain_tumor/b.py"}
    before = code_fingerprint("steps.a:step", tmp_path)
    (tmp_path / "brain_tumor" / "unused.py").write_text("Y = 2\n")
    assert code_fingerprint("steps.a:step", tmp_path) == before
    (tmp_path / "steps" / "c.py").write_text("X = 2\n")  # imported lazily, inside the function: still its code
    assert code_fingerprint("steps.a:step", tmp_path) != before
