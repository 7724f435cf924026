"""One self-contained `report.html` for a run folder: every figure embedded, a table of contents, the conclusion and
the champion's model card written from the run's own numbers. Opens offline; holds no credentials (it is made only
from the run folder's data files and figures)."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import pandas as pd

from . import __version__
from .figures import heldout_split, report_dir
from .selection import CHAMPION_METRICS

NOT_CLINICAL = "Research prototype — not for clinical use."
SECTIONS = [("overview", "Overview"), ("exploration", "Data exploration"), ("leakage", "Leakage audit"),
            ("training", "Training"), ("evaluation", "Evaluation"), ("calibration", "Calibration"),
            ("comparison", "Comparison"), ("conclusion", "Conclusion"), ("model-card", "Model card")]
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; }
nav { background: #f4f6f8; padding: .5em 1.5em; border-radius: 6px; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: .8em 0; }
.notice { background: #fff3cd; border: 1px solid #e0c060; padding: .6em 1em; border-radius: 6px; font-weight: bold; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .8em; }
"""


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}", na_rep="")


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def _figures(folder: Path, names: list[str]) -> str:
    return "".join(_image(folder / name, name) for name in names if (folder / name).is_file())


def missing_inputs(run_dir: Path) -> list[str]:
    """The files the report needs that the run folder lacks (e.g. steps run on other machines without a shared disk)."""
    needed = ["data_report.json", "comparison.csv", "champion.json", "report/leakage/leakage.json"]
    return [name for name in needed if not (run_dir / name).is_file()]


def load_run(run_dir: Path) -> dict:
    """Everything the report shows, read back from the run folder."""
    table = pd.read_csv(run_dir / "comparison.csv")
    models = table["model"].tolist()
    return {
        "run_dir": run_dir,
        "data": _read_json(run_dir / "data_report.json"),
        "leakage": _read_json(report_dir(run_dir) / "leakage" / "leakage.json"),
        "table": table,
        "champion": _read_json(run_dir / "champion.json"),
        "training": {m: _read_json(run_dir / "models" / m / "training.json") for m in models},
        "metrics": {m: _read_json(run_dir / "metrics" / f"{m}.json") for m in models},
    }


def _standard_error(accuracy: float, n: int) -> float:
    return math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / max(n, 1))


def main_confusions(confusion: list[list[int]], names: list[str], top: int = 3) -> list[str]:
    """The largest off-diagonal cells, in words."""
    cells = sorted(((n, i, j) for i, row in enumerate(confusion) for j, n in enumerate(row) if i != j and n),
                   reverse=True)[:top]
    return [f"{names[i]} predicted as {names[j]}: {n} of {sum(confusion[i])} ({n / sum(confusion[i]):.0%})"
            for n, i, j in cells]


def conclusion(run: dict) -> list[str]:
    """The conclusion's sentences, each computed from the run's numbers."""
    table, decision, data = run["table"], run["champion"], run["data"]
    champion = decision["champion"]
    metrics = run["metrics"][champion]
    column, higher_is_better = CHAMPION_METRICS[decision["metric"]]
    ranked = table.sort_values(column, ascending=not higher_is_better)
    n_val = metrics["val"]["samples"]
    lines = []
    if len(ranked) > 1:
        runner = ranked.iloc[1]
        margin = abs(decision["value"] - runner[column])
        noise = _standard_error(metrics["val"]["accuracy"], n_val)
        lines.append(f"{champion} won on {decision['metric']} with {decision['value']:.3f}, ahead of {runner['model']} "
                     f"({runner[column]:.3f}) by {margin:.3f}; "
                     + (f"that is less than one standard error of a {n_val}-image validation set (about {noise:.3f}), "
                        "so the two are not reliably different." if margin < noise else
                        f"more than one standard error of the {n_val}-image validation set (about {noise:.3f})."))
    else:
        lines.append(f"{champion} was the only model trained, so it is the champion by default.")
    split = heldout_split(metrics)
    held = metrics[split]
    names = data["class_names"]
    lines.append(f"On the {SPLIT_NAMES[split]} split ({held['samples']} images, never used to choose) it reaches "
                 f"accuracy {held['accuracy']:.3f} and macro-F1 {held['macro_f1']:.3f}.")
    recalls = {name: held["per_class"][name]["recall"] for name in names}
    weakest = min(recalls, key=recalls.get)
    lines.append("Per-class sensitivity (recall): " + ", ".join(f"{n} {r:.2f}" for n, r in recalls.items())
                 + f"; the weakest is {weakest}.")
    confusions = main_confusions(held["confusion_matrix"], names)
    lines.append("Main confusions: " + ("; ".join(confusions) if confusions else "none") + ".")
    gap = metrics["overfitting"]
    lines.append(f"Train accuracy {gap['train_accuracy']:.3f} vs validation {gap['val_accuracy']:.3f} "
                 f"(gap {gap['gap']:+.3f}): {gap['verdict']}.")
    calibration = metrics["calibration"][split]
    mean_confidence = sum(b["confidence"] * b["count"] for b in calibration["bins"] if b["count"]) / max(
        calibration["samples"], 1)
    lines.append(f"Calibration: expected calibration error {calibration['ece']:.3f}; mean confidence "
                 f"{mean_confidence:.3f} against accuracy {held['accuracy']:.3f}, so the model is "
                 + ("over-confident." if mean_confidence > held["accuracy"] else "under-confident."))
    leak = run["leakage"]
    if leak["test_images"]:
        sentence = (f"Leakage: {leak['twins']} of {leak['test_images']} test images ({leak['twin_fraction']:.0%}) "
                    f"have a near-duplicate in training or validation")
        twin = metrics.get("leakage", {})
        if twin.get("twin") and twin.get("novel"):
            sentence += (f"; the champion's accuracy is {twin['twin']['accuracy']:.3f} on those and "
                         f"{twin['novel']['accuracy']:.3f} on the {twin['novel']['samples']} novel ones")
        random = leak["random_split"]
        sentence += (f". A random split of the same images, as in the seed notebook, would have given "
                     f"{random['twins']} of {random['test_images']} ({random['twin_fraction']:.0%}).")
        lines.append(sentence)
    if "resnet50" in table["model"].values and len(table) > 1:
        custom = table[table["model"] != "resnet50"].sort_values(column, ascending=not higher_is_better).iloc[0]
        resnet = table[table["model"] == "resnet50"].iloc[0]
        weights = run["training"]["resnet50"].get("resnet_weights") or "no pretrained weights"
        lines.append(f"Custom CNNs vs transfer learning: best custom CNN {custom['model']} {custom[column]:.3f}, "
                     f"ResNet50 ({weights}) {resnet[column]:.3f} on {decision['metric']}.")
    groups = data.get("near_duplicates", {})
    lines.append(f"Limits: {data['images_used']} images from one source"
                 + (f", {groups['images_in_groups_of_two_or_more']} of them in near-duplicate groups"
                    if groups else "")
                 + "; 2D slices without patient identifiers, so images of one patient may still span splits; "
                   "no external validation — an independent, multi-centre test set is needed before any claim.")
    lines.append(NOT_CLINICAL)
    return lines


def model_card(run: dict) -> list[tuple[str, str]]:
    decision, data = run["champion"], run["data"]
    champion = decision["champion"]
    training, metrics = run["training"][champion], run["metrics"][champion]
    split = heldout_split(metrics)
    splits = data.get("splits", {})
    return [
        ("Model", f"{champion} ({training['params']['total']:,} parameters, "
                  f"{training['params']['trainable']:,} trainable); brain-tumor-clearml {__version__}"),
        ("Intended use", "Research and teaching: sorting single 2D brain MRI slices into "
                         + ", ".join(data["class_names"]) + ". " + NOT_CLINICAL),
        ("Input", f"One RGB image resized to {training['image_size']}×{training['image_size']}; the preprocessing "
                  "is inside the saved model."),
        ("Training data", f"{data['train_dir']}: {data['images_used']} images used, {data['skipped_count']} skipped; "
                          + ", ".join(f"{SPLIT_NAMES[s]} {sum(c.values())}" for s, c in splits.items())
                          + " (grouped split: near-duplicates never straddle splits)."),
        ("Chosen on", f"{decision['metric']} = {decision['value']:.4f} (validation only)."),
        ("Metrics", f"{SPLIT_NAMES[split]}: accuracy {metrics[split]['accuracy']:.3f}, macro-F1 "
                    f"{metrics[split]['macro_f1']:.3f}, ECE {metrics['calibration'][split]['ece']:.3f}; validation: "
                    f"accuracy {metrics['val']['accuracy']:.3f}, macro-F1 {metrics['val']['macro_f1']:.3f}."),
        ("Caveats", "Single public dataset, no external validation, no patient-level split information; "
                    "probabilities are not calibrated risks; performance on other scanners and protocols is unknown."),
    ]


def _section_exploration(run: dict, folder: Path) -> str:
    data = run["data"]
    splits = pd.DataFrame(data.get("splits", {})).rename(columns=SPLIT_NAMES)
    splits["total"] = splits.sum(axis=1)
    train = data.get("splits", {}).get("train", {})
    ratio = max(train.values()) / max(min(train.values()), 1) if train else float("nan")
    parts = [_table(splits.rename_axis("class").reset_index()),
             _p(f"Imbalance ratio (largest / smallest training class): {ratio:.2f}."),
             _figures(folder, ["class_counts.png", "samples.png"]),
             "<h3>Data report</h3>",
             _p(f"Images used: {data['images_used']}; skipped: {data['skipped_count']}; image modes: "
                + ", ".join(f"{k} {v}" for k, v in data.get("modes", {}).items()) + ".")]
    if data["skipped"]:
        parts.append(_table(pd.DataFrame(data["skipped"])))
    return "".join(parts)


def _section_leakage(run: dict, folder: Path) -> str:
    leak, random = run["leakage"], run["leakage"]["random_split"]
    parts = [_p(f"Each test image's nearest training or validation image by perceptual hash (pHash, 64 bits); a "
                f"distance of at most {leak['max_distance']} bits counts as a near-duplicate (a twin)."),
             _p(f"Test images with a twin: {leak['twins']} of {leak['test_images']} ({leak['twin_fraction']:.1%}). "
                f"A random, ungrouped split of the same images would have given {random['twins']} of "
                f"{random['test_images']} ({random['twin_fraction']:.1%})."),
             _figures(folder, ["leakage_distances.png", "leakage_twins.png"])]
    if leak["pairs"]:
        parts.append(_table(pd.DataFrame(leak["pairs"])))
    parts += ["<h3>Closest pairs, whatever their distance</h3>", _figures(folder, ["leakage_closest.png"])]
    rows = [{"model": m, **{f"{kind} {key}": (values or {}).get(key) for kind, values in
                            metrics.get("leakage", {}).items() for key in ("samples", "accuracy", "macro_f1")}}
            for m, metrics in run["metrics"].items()]
    parts += ["<h3>Test metrics: images with a twin vs novel images</h3>", _table(pd.DataFrame(rows))]
    return "".join(parts)


def _section_training(run: dict, folder: Path) -> str:
    parts = []
    for model, record in run["training"].items():
        summary = folder / model / "summary.txt"
        parts += [f"<h3>{html.escape(model)}</h3>",
                  _p(f"{record['params']['total']:,} parameters ({record['params']['trainable']:,} trainable); "
                     f"{record['epochs_run']} epochs run, best epoch {record['best_epoch']} (validation loss "
                     f"{record['best_val_loss']:.4f}); batch {record['config']['batch_size']}, learning rate "
                     f"{record['config']['learning_rate']}; {record['train_seconds']:.0f} s."),
                  _figures(folder / model, ["curves.png"])]
        if summary.is_file():
            parts.append(f"<details><summary>Model summary</summary><pre>{html.escape(summary.read_text())}</pre>"
                         "</details>")
    return "".join(parts)


def _section_evaluation(run: dict, folder: Path) -> str:
    parts = []
    for model, metrics in run["metrics"].items():
        split = heldout_split(metrics)
        held = metrics[split]
        per_class = {k: v for k, v in held["per_class"].items() if k != "accuracy"}  # accuracy is in the line above
        report = pd.DataFrame(per_class).T.rename_axis("class").reset_index()
        parts += [f"<h3>{html.escape(model)}</h3>",
                  _p(f"{SPLIT_NAMES[split].capitalize()} split, {held['samples']} images: accuracy "
                     f"{held['accuracy']:.3f}, macro precision {held['macro_precision']:.3f}, macro recall "
                     f"{held['macro_recall']:.3f}, macro-F1 {held['macro_f1']:.3f}."),
                  _table(report), _figures(folder / model, ["confusion.png"]),
                  _list([e["text"] for e in held["errors"].values()]),
                  _figures(folder / model, ["predictions.png"]),
                  _p(f"Overfitting: train accuracy {metrics['overfitting']['train_accuracy']:.3f}, validation "
                     f"{metrics['overfitting']['val_accuracy']:.3f}, gap {metrics['overfitting']['gap']:+.3f} — "
                     f"{metrics['overfitting']['verdict']}.")]
    return "".join(parts)


def _section_calibration(run: dict, folder: Path) -> str:
    rows = [{"model": m, **{f"ECE {SPLIT_NAMES[s]}": c["ece"] for s, c in metrics["calibration"].items()}}
            for m, metrics in run["metrics"].items()]
    parts = [_p("Expected calibration error (ECE, 10 equal-width confidence bins): the average gap between a "
                "model's confidence and its accuracy, weighted by how many predictions fall in each bin. 0 is perfect."),
             _table(pd.DataFrame(rows))]
    for model in run["metrics"]:
        parts.append(_figures(folder / model, ["reliability.png"]))
    return "".join(parts)


def _section_comparison(run: dict, folder: Path) -> str:
    return "".join([_table(run["table"]), _figures(folder, ["comparison.png", "curves_all.png",
                                                             "custom_vs_transfer.png"]),
                    f"<p><strong>Champion: {html.escape(run['champion']['champion'])}</strong> — "
                    f"{html.escape(run['champion']['why'])}</p>"])


def build_report(run_dir: str | Path) -> Path:
    """Write RUN/report.html from the run folder's files and figures; returns its path."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    figures = report_dir(run_dir)
    champion = run["champion"]
    bodies = {
        "overview": _p(f"Run folder {run_dir.name}: {len(run['table'])} models trained on "
                       f"{run['data']['images_used']} images; champion {champion['champion']} "
                       f"({champion['metric']} {champion['value']:.4f})."),
        "exploration": _section_exploration(run, figures / "exploration"),
        "leakage": _section_leakage(run, figures / "leakage"),
        "training": _section_training(run, figures / "models"),
        "evaluation": _section_evaluation(run, figures / "evaluation"),
        "calibration": _section_calibration(run, figures / "evaluation"),
        "comparison": _section_comparison(run, figures / "comparison"),
        "conclusion": _list(conclusion(run)),
        "model-card": "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td style='text-align:left'>"
                                          f"{html.escape(v)}</td></tr>" for k, v in model_card(run)) + "</table>",
    }
    toc = "".join(f'<li><a href="#{key}">{title}</a></li>' for key, title in SECTIONS)
    sections = "".join(f'<section id="{key}"><h2>{title}</h2>{bodies[key]}</section>' for key, title in SECTIONS)
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Brain tumour MRI run "
            f"{html.escape(run_dir.name)}</title><style>{STYLE}</style></head><body>"
            f"<h1>Brain tumour MRI classification — run {html.escape(run_dir.name)}</h1>"
            f"<p class='notice'>{NOT_CLINICAL}</p><nav><h2>Contents</h2><ol>{toc}</ol></nav>{sections}"
            f"<p class='notice'>{NOT_CLINICAL}</p></body></html>")
    path = run_dir / "report.html"
    path.write_text(page)
    return path
