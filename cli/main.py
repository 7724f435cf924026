"""`brain-tumor`: the one command users type.

    brain-tumor demo                                   the whole pipeline on generated data, minutes on a CPU
    brain-tumor run --data ROOT                        the pipeline: 4 models in parallel → champion
    brain-tumor launch --data ROOT                     the same pipeline on a ClearML server, trainings on GPU agents
    brain-tumor tune --model cnn_b --data ROOT         search a model's recipe on validation (Optuna; --server: agents)
    brain-tumor run --config best.yaml --data ROOT     run, launch and tune also take a YAML or JSON file
    brain-tumor doctor                                 what works on the server and its agents, and the fixes
    brain-tumor train --data ROOT --model cnn_a        one model on a real folder
    brain-tumor evaluate RUN/model.keras FOLDER        a saved model on any labelled folder (or a manifest split)
    brain-tumor predict RUN images/ --gradcam cams/    the champion on new images (CSV), with Grad-CAM
    brain-tumor app RUN                                the champion in a local web app
    brain-tumor report RUN                             rebuild a run's report.html
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

from brain_tumor.errors import UserError
from brain_tumor.model_specs import MODEL_SPECS
from brain_tumor.recipe import Recipe
from brain_tumor.selection import CHAMPION_METRICS

from .options import add_config_options, config_from_args

DATA_OPTIONS = ("data", "train_dir", "test_dir")
TRAINING_OPTIONS = ("image_size", "val_fraction", "test_fraction", "seed", "recipe", *(f.name for f in fields(Recipe)),
                    "precision", "weights", "fine_tune_layers", "augment_on")
# The demo: small images, few epochs, the custom CNNs and ResNet50 without ImageNet weights: minutes on a CPU.
DEMO = {"run_dir": "runs/demo", "models": "cnn_a,cnn_b,cnn_c,resnet50", "epochs": 8, "image_size": 48,
        "weights": "none"}


CONFIG_HELP = ("a YAML or JSON file of parameters (the options' names, e.g. `epochs: 10`); options typed here win "
               "over it")
TUNE_DEFAULTS = {"model": "cnn_b", "trials": 20, "objective": "val_macro_f1", "timeout_minutes": 0}


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: no C++ info chatter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brain-tumor", description="Brain-tumour MRI classification.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train and evaluate one model on a data folder")
    add_config_options(train, only=DATA_OPTIONS + TRAINING_OPTIONS)
    train.add_argument("--model", default="cnn_a", help=", ".join(MODEL_SPECS))
    train.add_argument("--out", help="output folder (default: runs/<model>-<time>)")

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on a labelled folder or manifest split")
    evaluate.add_argument("model", help="a model.keras written by 'train'")
    evaluate.add_argument("data", help="a folder of class folders (ROOT with Testing/ uses Testing/), "
                                       "or a manifest.csv with --split")
    evaluate.add_argument("--split", help="with a manifest.csv: train, val or test")
    evaluate.add_argument("--out", help="write the metrics JSON here")

    run = commands.add_parser("run", help="run the pipeline locally: register data, class weights, train every "
                                          "model, evaluate, select the champion")
    add_config_options(run, "local")
    run.add_argument("--config", metavar="FILE", help=CONFIG_HELP)

    launch = commands.add_parser("launch", help="run the pipeline on a ClearML server: trainings on GPU agents")
    add_config_options(launch, "server")
    launch.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    launch.add_argument("--controller-queue", default="services", help="queue of the pipeline controller")
    mode = launch.add_mutually_exclusive_group()
    mode.add_argument("--controller-local", dest="mode", action="store_const", const="controller-local",
                      default="remote", help="run the controller here, steps on agents")
    mode.add_argument("--steps-local", dest="mode", action="store_const", const="steps-local",
                      help="run every step here, tracked on the server")
    mode.add_argument("--draft", dest="mode", action="store_const", const="draft",
                      help="store the pipeline on the server without running it (clone, edit, enqueue in the web UI)")

    tune = commands.add_parser("tune", help="search one model's training recipe on the validation split (an Optuna "
                                            "study in --out, or --server: trials on ClearML agents): trials.csv, "
                                            "best.yaml")
    add_config_options(tune, only=DATA_OPTIONS + TRAINING_OPTIONS + ("run_dir",), defaults={"run_dir": ""})
    tune.add_argument("--config", metavar="FILE", help=CONFIG_HELP + "; its `search:` mapping sets ranges as --search")
    tune.add_argument("--model", default=TUNE_DEFAULTS["model"], help=", ".join(MODEL_SPECS))
    tune.add_argument("--trials", default=TUNE_DEFAULTS["trials"],
                      help="trials the study holds when it ends (finished ones count: the same command with more "
                           "continues it) (default: %(default)s)")
    tune.add_argument("--objective", default=TUNE_DEFAULTS["objective"],
                      help=f"validation metric to optimise: {', '.join(CHAMPION_METRICS)} (default: %(default)s)")
    tune.add_argument("--search", action="append", default=[], metavar="NAME=KIND:...",
                      help="a parameter's range, replacing its declared one (shown with each option): "
                           "lr=log:1e-4:3e-3, label_smoothing=uniform:0:0.2, patience=int:2:8, "
                           "augment=choice:none,light; a tunable option given a value is held at it instead")
    tune.add_argument("--timeout-minutes", default=TUNE_DEFAULTS["timeout_minutes"],
                      help="start no trial after this many minutes (0: no limit) (default: %(default)s)")
    server = tune.add_argument_group("on a ClearML server (--server): ClearML's HyperParameterOptimizer with Optuna "
                                     "clones a training task per trial onto the GPU queue")
    server.add_argument("--server", action="store_true",
                        help="run the study on the configured ClearML server instead of here")
    server.add_argument("--base-task", default="", metavar="ID",
                        help="the train_<model> step task of a finished pipeline run: each trial is a clone of it "
                             "(none: a pipeline run of --model alone on --data makes it first)")
    server.add_argument("--concurrency", type=int, default=1, help="trials running at once (default: %(default)s)")
    server.add_argument("--trial-minutes", type=float, default=0,
                        help="abort a trial after this many minutes (0: no limit) (default: %(default)s)")
    server.add_argument("--controller-queue", default="services", help="queue of the optimizer task")
    server.add_argument("--controller-local", dest="mode", action="store_const", const="controller-local",
                        default="remote", help="run the optimizer here (trials still on agents); it writes "
                                               "trials.csv and best.yaml to --out")
    add_config_options(server, only=("project", "gpu_queue", "allow_cpu"))

    doctor = commands.add_parser("doctor", help="check the ClearML server, its workers and what a task on each queue "
                                                "can do (Python, TensorFlow, GPUs, files server); a fix per failure")
    add_config_options(doctor, only=("gpu_queue", "cpu_queue", "docker_image", "output_uri", "allow_cpu", "project"))
    doctor.add_argument("--controller-queue", default="services", help="queue of the pipeline controller")
    doctor.add_argument("--timeout", type=float, default=600, help="seconds to wait for the probe tasks")
    doctor.add_argument("--no-probe", dest="probe", action="store_false",
                        help="check the server and workers only, enqueue nothing")

    imports = commands.add_parser("import-offline", help="upload a local run's offline ClearML sessions to the "
                                                         "configured server")
    imports.add_argument("run_dir", help="a run folder written by 'run' or 'demo' with no server configured")

    predict = commands.add_parser("predict", help="class probabilities for an image or a folder of images")
    predict.add_argument("model", help="a .keras file, a run folder (its champion), a ClearML model id, or "
                                       "'champion' (the project's champion on the configured server)")
    predict.add_argument("images", help="an image file or a folder of images")
    predict.add_argument("--out", help="CSV of the predictions (default for a folder: predictions.csv)")
    predict.add_argument("--gradcam", metavar="DIR", help="also write a Grad-CAM overlay per image into DIR")
    predict.add_argument("--class", dest="class_name", help="the class Grad-CAM explains (default: the predicted one)")
    add_config_options(predict, only=("project",))

    app = commands.add_parser("app", help="serve a model in a Gradio web app (localhost only by default)")
    app.add_argument("model", help="as for predict")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    app.add_argument("--port", type=int, default=7860)
    app.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")
    add_config_options(app, only=("project",))

    report = commands.add_parser("report", help="rebuild a run folder's report.html from its files")
    report.add_argument("run_dir", help="a run folder written by 'run' or 'demo'")

    demo = commands.add_parser("demo", help="generate a small synthetic dataset and run the whole pipeline on it")
    add_config_options(demo, only=("models", "epochs", "image_size", "run_dir", "force"), defaults=DEMO)
    return parser


def print_metrics(title: str, metrics: dict) -> None:
    print(f"{title}: accuracy {metrics['accuracy']:.3f}, macro precision {metrics['macro_precision']:.3f}, "
          f"macro recall {metrics['macro_recall']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
          f"({metrics['samples']} images)")
    for analysis in metrics["errors"].values():
        print(f"  {analysis['text']}")


def run_training(args, out: Path) -> dict:
    from brain_tumor.data import find_layout
    from brain_tumor.experiment import prepare_data, train_one
    from brain_tumor.models import get_spec
    from brain_tumor.recipe import choose
    from brain_tumor.training import TrainConfig

    options = config_from_args(args)
    spec = get_spec(args.model)
    recipe = choose(options.recipe, Recipe(**{f.name: getattr(options, f.name) for f in fields(Recipe)}))
    layout = find_layout(options.data or None, options.train_dir or None, options.test_dir or None)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(layout, options.image_size, options.val_fraction, options.test_fraction, options.seed,
                            out, crop=recipe.crop)
    config = TrainConfig(recipe, recipe.batch_size or spec.batch_size, options.seed, options.augment_on)
    weights = None if options.weights.lower() == "none" else options.weights
    results = train_one(prepared, args.model, config, out, weights, options.fine_tune_layers, options.precision)
    print(f"\n{args.model}: {results['params']['total']:,} parameters ({results['params']['trainable']:,} trainable), "
          f"{results['epochs_run']} epochs (best {results['best_epoch']}), {results['train_seconds']:.0f} s")
    print_metrics("Validation", results["val"])
    if "test" in results:
        print_metrics("Test", results["test"])
    gap = results["overfitting"]
    print(f"Train accuracy {gap['train_accuracy']:.3f} vs validation {gap['val_accuracy']:.3f}: "
          f"gap {gap['gap']:+.3f}, {gap['verdict']}")
    print(f"Saved {out / 'model.keras'}, metrics.json, history.json, manifest.csv, data_report.json in {out}")
    return results


def cmd_train(args) -> None:
    out = Path(args.out or f"runs/{args.model}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_training(args, out)


def cmd_evaluate(args) -> None:
    from brain_tumor.experiment import evaluate_saved

    if Path(args.data).suffix == ".csv" and args.split is None:
        raise UserError("A manifest.csv needs --split (train, val or test).")
    results = evaluate_saved(args.model, args.data, args.split)
    for item in results["skipped"]:
        print(f"  skipped {item['path']}: {item['reason']}")
    print_metrics(f"{results['model']} on {args.data}" + (f" [{args.split}]" if args.split else ""), results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"Saved {args.out}")


def run_and_report(config, config_file: dict | None = None) -> None:
    from pipelines.local_runner import run_pipeline

    run_pipeline(config, config_file=config_file)
    out = Path(config.run_dir)
    print("\n" + (out / "comparison.md").read_text())
    print(f"Champion: {json.loads((out / 'champion.json').read_text())['why']}")
    print(f"Run folder: {out} (report.html, summary.md, comparison.csv, champion.keras, models/, metrics/, report/, "
          f"steps/)")


def config_record(args) -> dict | None:
    file = getattr(args, "config_file", None)
    return file.record() if file is not None else None


def cmd_run(args) -> None:
    run_and_report(config_from_args(args), config_record(args))


def cmd_demo(args) -> None:
    from brain_tumor.synthetic import plant_twins, write_dataset

    config = config_from_args(args, **{k: v for k, v in DEMO.items() if not hasattr(args, k)})
    data = Path(config.run_dir) / "data"
    if data.is_dir():  # kept as it was, so that a second demo reuses every finished step
        print(f"Using the synthetic dataset already in {data}")
    else:
        write_dataset(data, train_per_class=100, test_per_class=25, size=64, seed=0)
        plant_twins(data, 20, seed=0)  # like the real set, some test images are near-copies of training images
        print(f"Generated a synthetic 4-class dataset in {data} (20 test images are near-copies of training images, "
              f"for the leakage audit to find)")
    run_and_report(config.replace(data=str(data)))


def cmd_launch(args) -> None:
    from pipelines.launch import launch

    code = launch(config_from_args(args), args.mode, args.controller_queue, config_record(args))
    if code:
        raise UserError(f"The pipeline controller stopped with exit code {code} (its output is above).")


def tune_arguments(args) -> tuple:
    """The study's configuration, its own options (model, trials, objective, timeout) and its search space, from
    the options, the configuration file and the defaults; every problem in one message."""
    from pipelines.config import coerce_plain
    from pipelines.search_space import parse_option, search_space, tunable

    file = getattr(args, "config_file", None)
    typed = getattr(args, "typed", set())
    own, problems = {}, []
    for name, default in TUNE_DEFAULTS.items():
        value = getattr(args, name) if name in typed or file is None else file.extra.get(name, getattr(args, name))
        try:
            own[name] = coerce_plain(name, type(default), value)
        except ValueError as error:
            problems.append(str(error))
            own[name] = default
    if own["model"] not in MODEL_SPECS:
        problems.append(f"model: {own['model']!r} is not one of {', '.join(MODEL_SPECS)}")
    if own["trials"] < 1:
        problems.append(f"trials: {own['trials']} (at least 1)")
    if own["objective"] not in CHAMPION_METRICS:
        problems.append(f"objective: {own['objective']!r} is not one of {', '.join(CHAMPION_METRICS)} "
                        f"(validation metrics only)")
    if own["timeout_minutes"] < 0:
        problems.append(f"timeout_minutes: {own['timeout_minutes']} (0 for no limit, or more)")
    if not (typed & {"run_dir"} or (file is not None and "run_dir" in file.values)):
        where = "tune-server" if getattr(args, "server", False) or getattr(args, "base_task", "") else "tune"
        args.run_dir = f"runs/{where}-{own['model']}-{own['objective']}"  # the same command continues the same study
    config = None
    try:
        config = config_from_args(args)
    except UserError as error:
        problems += str(error).splitlines()[1:]
    given = {n for n in tunable() if n in typed or (file is not None and n in file.values)}
    ranges = dict(file.search) if file is not None else {}
    try:
        ranges.update(parse_option(text) for text in args.search)
        space = search_space(ranges, given)
    except UserError as error:
        problems += str(error).splitlines()[1:] or [str(error)]
        space = None
    if problems:
        where = f" (from {file.path} and the command line)" if file is not None else ""
        raise UserError(f"Invalid tune options{where}:\n  - " + "\n  - ".join(p.strip(" -") for p in problems))
    return config, own, space


def cmd_tune(args) -> None:
    from pipelines.tune import tune

    config, own, space = tune_arguments(args)
    if args.server or args.base_task:
        from pipelines.tune_server import tune_on_server

        tune_on_server(config, own["model"], own["trials"], own["objective"], space, args.base_task,
                       fixed_training_values(args, config, own["model"]), args.concurrency, own["timeout_minutes"],
                       args.trial_minutes, args.mode, args.controller_queue)
        return
    tune(config, own["model"], own["trials"], own["objective"], space, own["timeout_minutes"], config_record(args))


def fixed_training_values(args, config, model: str) -> dict:
    """What a server study sets on its base task: the training arguments typed here or in --config (the others
    stay as the base task ran them)."""
    from pipelines.dag import expand

    file = getattr(args, "config_file", None)
    given = set(getattr(args, "typed", set())) | (set(file.values) if file is not None else set())
    (node,) = [n for n in expand([model]) if n.name == f"train_{model}"]
    values = config.values()
    return {name: values[name] for name in node.kwargs
            if name in given and name in values and name != "run_dir"}  # run_dir: the agent's scratch folder


def cmd_doctor(args) -> None:
    from pipelines.doctor import ChecksFailed, format_table, run_doctor

    checks = run_doctor(config_from_args(args), args.controller_queue, args.timeout, args.probe)
    print(format_table(checks))
    failed = sum(not c.ok for c in checks)
    if failed:
        raise ChecksFailed(f"{failed} of {len(checks)} checks failed: the fixes are above.")
    print(f"All {len(checks)} checks passed.")


def cmd_import_offline(args) -> None:
    from pipelines.server import import_offline_sessions

    import_offline_sessions(Path(args.run_dir))


def load_model_reference(reference: str, project: str | None = None):
    """(model, metadata, local path) for a .keras file, a run folder, a ClearML model id or 'champion'."""
    from brain_tumor.predict import load_checked, local_model_path

    path = local_model_path(reference)
    if path is None:
        from steps.registry import resolve_model

        path = resolve_model(reference, project)
    model, metadata = load_checked(path)
    return model, metadata, path


def cmd_predict(args) -> None:
    from brain_tumor.predict import list_images, predict_files

    model, metadata, path = load_model_reference(args.model, args.project)
    paths = list_images(args.images)
    rows, skipped = predict_files(model, metadata, paths, Path(args.gradcam) if args.gradcam else None,
                                  args.class_name)
    for item in skipped:
        print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    print(f"Model {metadata['model_name']} ({path}); {len(rows)} image(s) predicted, {len(skipped)} skipped.")
    if len(paths) == 1 and len(rows) == 1 and not args.out:
        row = rows.iloc[0]
        print(f"{row['file']}: {row['predicted']} ({row['confidence']:.1%}) — "
              + ", ".join(f"{n} {row[f'p_{n}']:.3f}" for n in metadata["class_names"]))
    elif len(rows):
        out = Path(args.out or "predictions.csv")
        rows.to_csv(out, index=False)
        print("Predicted: " + ", ".join(f"{n} {c}" for n, c in rows["predicted"].value_counts().items())
              + f". Written to {out}")
    if args.gradcam and len(rows):
        print(f"Grad-CAM overlays in {args.gradcam}")
    if not len(rows):
        raise UserError(f"No readable image in {args.images} ({len(skipped)} skipped, reasons above).")


def cmd_app(args) -> None:
    from brain_tumor.app import launch

    model, metadata, path = load_model_reference(args.model, args.project)
    if args.host not in ("127.0.0.1", "localhost"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the app",
              file=sys.stderr)
    launch(model, metadata, path, args.host, args.port, args.share)


def cmd_report(args) -> None:
    from brain_tumor.report import build_report, missing_inputs

    missing = missing_inputs(Path(args.run_dir))
    if missing:
        raise UserError(f"{args.run_dir} is not a finished run folder: missing {', '.join(missing)}. Run the "
                        f"pipeline into it first (brain-tumor run --out {args.run_dir} ...).")
    print(f"Report: {build_report(args.run_dir)}")


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "run": cmd_run, "demo": cmd_demo, "launch": cmd_launch,
            "tune": cmd_tune,
            "doctor": cmd_doctor, "import-offline": cmd_import_offline, "predict": cmd_predict, "app": cmd_app,
            "report": cmd_report}


def typed_options(argv: list[str]) -> set[str]:
    """The options the user typed (not their defaults): what a configuration file may not override. The same
    parser with every default suppressed leaves only those in its namespace."""
    parser = build_parser()
    for action in parser._actions:  # noqa: SLF001 (argparse has no public accessor for its subcommands)
        for command in getattr(action, "choices", None) or {}:
            for option in action.choices[command]._actions:
                option.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    try:
        if args.command in ("run", "launch", "tune"):
            args.typed = typed_options(argv)
        if getattr(args, "config", None):
            from pipelines.config_file import read

            args.config_file = read(args.config, extra_keys=tuple(TUNE_DEFAULTS) if args.command == "tune" else (),
                                    allow_search=args.command == "tune")
        COMMANDS[args.command](args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
