"""`brain-tumor`: the one command users type.

    brain-tumor demo                                   the whole pipeline on generated data, minutes on a CPU
    brain-tumor run --data ROOT                        the pipeline: 4 models in parallel → champion
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
from pathlib import Path

from .errors import UserError

SEED_DEFAULTS = {"image_size": 224, "batch_size": 32, "epochs": 15, "lr": 1e-4}


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: no C++ info chatter


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="ROOT holding Training/<class>/ (and optionally Testing/<class>/), "
                                       "or a folder of class folders")
    parser.add_argument("--train-dir", help="a folder of class folders to train on (instead of --data)")
    parser.add_argument("--test-dir", help="a folder of class folders to test on (default: Testing/ beside "
                                           "Training/, else a test split carved from training)")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=SEED_DEFAULTS["epochs"])
    parser.add_argument("--image-size", type=int, default=SEED_DEFAULTS["image_size"], help="square side in pixels")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the model's batch size in the seed's table (32; 64 for cnn_b)")
    parser.add_argument("--lr", type=float, default=SEED_DEFAULTS["lr"], help="Adam learning rate")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="validation share of Training")
    parser.add_argument("--test-fraction", type=float, default=0.15,
                        help="test share carved from Training when there is no test folder")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--resnet-weights", default="imagenet",
                        help="'imagenet' (download or Keras cache), a local weights file, or 'none'")
    parser.add_argument("--augment-on", default="auto", choices=["auto", "model", "tfdata", "none"],
                        help="where augmentation runs: in the model (GPU), in tf.data (CPU), or not at all; "
                             "auto picks model on a GPU, tfdata otherwise")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per pipeline parameter, with the DAG's defaults and descriptions."""
    from pipelines.dag import PARAMETERS

    for name, (default, description) in PARAMETERS.items():
        flag = "--out" if name == "run_dir" else "--" + name.replace("_", "-")
        kind = type(default) if isinstance(default, (int, float)) else str
        parser.add_argument(flag, dest=name, type=kind, default=default, help=description)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brain-tumor", description="Brain-tumour MRI classification.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train and evaluate one model on a data folder")
    add_data_arguments(train)
    train.add_argument("--model", default="cnn_a", help="cnn_a, cnn_b, cnn_c or resnet50")
    add_training_arguments(train)
    train.add_argument("--out", help="output folder (default: runs/<model>-<time>)")

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on a labelled folder or manifest split")
    evaluate.add_argument("model", help="a model.keras written by 'train'")
    evaluate.add_argument("data", help="a folder of class folders (ROOT with Testing/ uses Testing/), "
                                       "or a manifest.csv with --split")
    evaluate.add_argument("--split", help="with a manifest.csv: train, val or test")
    evaluate.add_argument("--out", help="write the metrics JSON here")

    run = commands.add_parser("run", help="run the pipeline locally: register data, class weights, train every "
                                          "model, evaluate, select the champion")
    add_pipeline_arguments(run)
    run.add_argument("--max-parallel", type=int, default=None,
                     help="trainings at once (default: one per GPU, or 1 on a CPU)")
    run.add_argument("--force", action="store_true", help="re-run every step, even unchanged ones")

    launch = commands.add_parser("launch", help="run the pipeline on a ClearML server: trainings on GPU agents")
    add_pipeline_arguments(launch)
    launch.add_argument("--gpu-queue", default="gpu", help="queue of the training steps")
    launch.add_argument("--cpu-queue", default="default", help="queue of the light steps")
    launch.add_argument("--controller-queue", default="services", help="queue of the pipeline controller")
    launch.add_argument("--controller-local", action="store_true", help="run the controller here, steps on agents")
    launch.add_argument("--steps-local", action="store_true", help="run every step here, tracked on the server")

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

    app = commands.add_parser("app", help="serve a model in a Gradio web app (localhost only by default)")
    app.add_argument("model", help="as for predict")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    app.add_argument("--port", type=int, default=7860)
    app.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")

    report = commands.add_parser("report", help="rebuild a run folder's report.html from its files")
    report.add_argument("run_dir", help="a run folder written by 'run' or 'demo'")

    demo = commands.add_parser("demo", help="generate a small synthetic dataset and run the whole pipeline on it")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--models", default="cnn_a,cnn_b,cnn_c,resnet50")
    demo.add_argument("--epochs", type=int, default=8)
    demo.add_argument("--image-size", type=int, default=48)
    demo.add_argument("--force", action="store_true", help="re-run every step, even unchanged ones")
    return parser


def print_metrics(title: str, metrics: dict) -> None:
    print(f"{title}: accuracy {metrics['accuracy']:.3f}, macro precision {metrics['macro_precision']:.3f}, "
          f"macro recall {metrics['macro_recall']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
          f"({metrics['samples']} images)")
    for analysis in metrics["errors"].values():
        print(f"  {analysis['text']}")


def run_training(args, layout_args: dict, out: Path) -> dict:
    from .data import find_layout
    from .experiment import prepare_data, train_one
    from .models import get_spec
    from .training import TrainConfig

    spec = get_spec(args.model)
    layout = find_layout(**layout_args)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(layout, args.image_size, args.val_fraction, args.test_fraction, args.seed, out)
    config = TrainConfig(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size or spec.batch_size,
                         seed=args.seed, augment_on=args.augment_on)
    weights = None if str(args.resnet_weights).lower() == "none" else args.resnet_weights
    results = train_one(prepared, args.model, config, out, resnet_weights=weights)
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
    run_training(args, {"data": args.data, "train_dir": args.train_dir, "test_dir": args.test_dir}, out)


def cmd_evaluate(args) -> None:
    from .experiment import evaluate_saved

    if Path(args.data).suffix == ".csv" and args.split is None:
        raise UserError("A manifest.csv needs --split (train, val or test).")
    results = evaluate_saved(args.model, args.data, args.split)
    for item in results["skipped"]:
        print(f"  skipped {item['path']}: {item['reason']}")
    print_metrics(f"{results['model']} on {args.data}" + (f" [{args.split}]" if args.split else ""), results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"Saved {args.out}")


def run_and_report(parameters: dict, force: bool, max_parallel: int | None = None) -> None:
    from pipelines.local_runner import run_pipeline

    run_pipeline(parameters, force=force, max_parallel=max_parallel)
    out = Path(parameters["run_dir"])
    print("\n" + (out / "comparison.md").read_text())
    print(f"Champion: {json.loads((out / 'champion.json').read_text())['why']}")
    print(f"Run folder: {out} (report.html, summary.md, comparison.csv, champion.keras, models/, metrics/, report/, "
          f"steps/)")


def cmd_run(args) -> None:
    from pipelines.dag import PARAMETERS

    run_and_report({name: getattr(args, name) for name in PARAMETERS}, args.force, args.max_parallel)


def cmd_demo(args) -> None:
    from .synthetic import plant_twins, write_dataset

    out = Path(args.out)
    data = out / "data"
    if data.is_dir():  # kept as it was, so that a second demo reuses every finished step
        print(f"Using the synthetic dataset already in {data}")
    else:
        write_dataset(data, train_per_class=100, test_per_class=25, size=64, seed=0)
        plant_twins(data, 20, seed=0)  # like the real set, some test images are near-copies of training images
        print(f"Generated a synthetic 4-class dataset in {data} (20 test images are near-copies of training images, "
              f"for the leakage audit to find)")
    # Small images, few epochs, a 10× learning rate and ResNet50 without ImageNet weights: minutes on a CPU.
    run_and_report({"data": str(data), "models": args.models, "epochs": args.epochs, "image_size": args.image_size,
                    "lr": 1e-3, "resnet_weights": "none", "run_dir": str(out)}, args.force)


def cmd_launch(args) -> None:
    from pipelines.dag import PARAMETERS
    from pipelines.launch import launch

    code = launch({name: getattr(args, name) for name in PARAMETERS}, args.gpu_queue, args.cpu_queue,
                  args.controller_queue, args.controller_local, args.steps_local)
    if code:
        raise UserError(f"The pipeline controller stopped with exit code {code} (its output is above).")


def cmd_import_offline(args) -> None:
    from pipelines.server import import_offline_sessions

    import_offline_sessions(Path(args.run_dir))


def load_model_reference(reference: str):
    """(model, metadata, local path) for a .keras file, a run folder, a ClearML model id or 'champion'."""
    from .predict import load_checked, local_model_path

    path = local_model_path(reference)
    if path is None:
        from steps.registry import resolve_model

        path = resolve_model(reference)
    model, metadata = load_checked(path)
    return model, metadata, path


def cmd_predict(args) -> None:
    from .predict import list_images, predict_files

    model, metadata, path = load_model_reference(args.model)
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
    from .app import launch

    model, metadata, path = load_model_reference(args.model)
    if args.host not in ("127.0.0.1", "localhost"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the app",
              file=sys.stderr)
    launch(model, metadata, path, args.host, args.port, args.share)


def cmd_report(args) -> None:
    from .report import build_report, missing_inputs

    missing = missing_inputs(Path(args.run_dir))
    if missing:
        raise UserError(f"{args.run_dir} is not a finished run folder: missing {', '.join(missing)}. Run the "
                        f"pipeline into it first (brain-tumor run --out {args.run_dir} ...).")
    print(f"Report: {build_report(args.run_dir)}")


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "run": cmd_run, "demo": cmd_demo, "launch": cmd_launch,
            "import-offline": cmd_import_offline, "predict": cmd_predict, "app": cmd_app, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    try:
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
