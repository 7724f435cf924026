"""One self-contained `report.html` for a run folder: every figure embedded, a table of contents, the conclusion and
the champion's model card written from the run's own numbers. Opens offline; holds no credentials (it is made only
from the run folder's data files and figures).

The page is Jinja2 templates (`templates/`: `base.html` and one `sections/<key>.html` per section, autoescaped);
this module computes what each section shows: its sentences, tables (header and cells as text) and figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jinja2
import pandas as pd

from . import __version__
from .embed import embedded
from .figures import (BACKGROUND_FIGURE, CLOSEST, EXTERNAL_STYLE, PHOTO_GRIDS, PREDICTIONS, SAMPLES, STYLE_BASELINE,
                      STYLE_FIGURE, STYLE_MEDIANS, TWINS, ensemble_selection, external_figure_name, heldout_split,
                      report_dir)
from .images import STYLE_FEATURES
from .plots import fine_tune_start
from .selection import CHAMPION_METRICS
from .shortcuts import measured_background
from .split import DEFAULT_MAX_DISTANCE

NOT_CLINICAL = "Research prototype — not for clinical use."
SECTIONS = [("overview", "Overview"), ("exploration", "Data exploration"), ("leakage", "Leakage audit"),
            ("shortcuts", "Shortcut audit"), ("training", "Training"), ("evaluation", "Evaluation"),
            ("external", "External validation"), ("calibration", "Calibration"), ("ensemble", "Ensemble"),
            ("comparison", "Comparison"),
            ("conclusion", "Conclusion"), ("model-card", "Model card")]
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
MOSTLY_COPIES = 0.5  # above this share of near-copies of training images, an external set mostly re-tests training

TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("brain_tumor", "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters["fmt"] = format  # {{ value|fmt(".3f") }}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _optional_json(path: Path) -> dict | list | None:
    return _read_json(path) if path.is_file() else None


def _cell(value) -> str:
    """A table cell as text: floats to 4 significant digits, missing values empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(frame: pd.DataFrame, small: bool = False) -> dict:
    """A table for the `table` macro; `small`: a smaller font, for the tables with a column per class or per recipe
    knob (every table scrolls sideways rather than overflow the page)."""
    return {"header": [str(c) for c in frame.columns], "small": small,
            "body": [[_cell(v) for v in row] for row in frame.itertuples(index=False)]}


def _figures(folder: Path, names: list[str]) -> list[dict]:
    """The named figures of a folder that exist, for the `figures` macro (embed.embedded)."""
    return [embedded(folder / name, photo=name in PHOTO_GRIDS) for name in names if (folder / name).is_file()]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def interval_text(entry: dict | None, digits: int = 3) -> str:
    """{"value", "low", "high"} → '0.812 [0.771, 0.850]' (non-breaking spaces: a table cell keeps it on one line);
    'n/a' for a class without images."""
    if not entry or _missing(entry.get("value")):
        return "n/a"
    if _missing(entry.get("low")) or _missing(entry.get("high")):
        return f"{entry['value']:.{digits}f}"
    return f"{entry['value']:.{digits}f}\u00a0[{entry['low']:.{digits}f},\u00a0{entry['high']:.{digits}f}]"


def _ends(entry: dict, digits: int = 3) -> str:
    return f"{entry['low']:.{digits}f}–{entry['high']:.{digits}f}"


def glioma_class(names) -> str | None:
    """The glioma class (the class every published model misses most on new images), if there is one."""
    return next((n for n in names if n.startswith("glioma")), None)


def glioma_first(names) -> list[str]:
    return sorted(names, key=lambda n: n != glioma_class(names))


def weights_text(weights: str | None) -> str:
    """A transfer model's backbone weights in words."""
    if not weights or str(weights).lower() == "none":
        return "no pretrained weights"
    if str(weights).lower() == "imagenet":
        return "ImageNet weights"
    return f"weights from {Path(str(weights)).name}"


def missing_inputs(run_dir: Path) -> list[str]:
    """The files the report needs that the run folder lacks (e.g. steps run on other machines without a shared disk)."""
    needed = ["data_report.json", "comparison.csv", "champion.json", "report/leakage/leakage.json"]
    return [name for name in needed if not (run_dir / name).is_file()]


def load_run(run_dir: Path) -> dict:
    """Everything the report shows, read back from the run folder. `models`: the trained models and the ensemble
    (each with training.json and metrics; a history only when trained); `baselines`: the comparison rows of family
    "baseline" (metrics only, never candidates); `ensemble`: the ensemble step's outcome, built or not."""
    table = pd.read_csv(run_dir / "comparison.csv")
    family = table["family"] if "family" in table else pd.Series("", index=table.index)
    baselines = table.loc[family == "baseline", "model"].tolist()
    models = [m for m in table["model"] if m not in baselines]
    histories = {m: _optional_json(run_dir / "models" / m / "history.json") for m in models}
    baseline_metrics = {m: _optional_json(run_dir / "metrics" / f"{m}.json") for m in baselines}
    return {
        "run_dir": run_dir,
        "data": _read_json(run_dir / "data_report.json"),
        "leakage": _read_json(report_dir(run_dir) / "leakage" / "leakage.json"),
        "shortcuts": load_shortcuts(run_dir),
        "table": table,
        "champion": _read_json(run_dir / "champion.json"),
        "models": models,
        "baselines": baselines,
        "training": {m: _read_json(run_dir / "models" / m / "training.json") for m in models},
        "histories": {m: h for m, h in histories.items() if h is not None},
        "metrics": {m: _read_json(run_dir / "metrics" / f"{m}.json") for m in models},
        "baseline_metrics": {m: v for m, v in baseline_metrics.items() if v is not None},
        "ensemble": _optional_json(ensemble_selection(run_dir)),  # None: a run made before the step recorded it
    }


def load_shortcuts(run_dir: Path) -> dict:
    """The shortcut audit's files (each None when absent: runs made before the audit, or without style data)."""
    folder = report_dir(run_dir) / "shortcuts"
    medians = folder / STYLE_MEDIANS
    return {"baseline": _optional_json(folder / STYLE_BASELINE), "external": _optional_json(folder / EXTERNAL_STYLE),
            "medians": pd.read_csv(medians) if medians.is_file() else None}


def background_flags(metrics: dict) -> list[str]:
    """The classes whose Grad-CAM rests mostly outside the head for a model (none when it was not measured)."""
    return (measured_background(metrics) or {}).get("flagged") or []


def shortcut_limit(run: dict) -> str | None:
    """The shortcut audit as a limit: its verdict when flagged, and the champion's Grad-CAM classes that rest mostly
    outside the head; None when neither."""
    baseline = run["shortcuts"]["baseline"]
    champion = run["champion"]["champion"]
    flagged = background_flags(run["metrics"][champion])
    parts = []
    if baseline and baseline["verdict"]["flagged"]:
        parts.append(baseline["verdict"]["sentence"] + " A model can learn this style instead of the tumour, so its "
                     "scores may not carry over to images made differently.")
    if flagged:
        parts.append(f"Grad-CAM of {champion} rests mostly on background or borders for {', '.join(flagged)} (more "
                     "than half of the heatmap outside the head).")
    return " ".join(parts) or None


def main_confusions(confusion: list[list[int]], names: list[str], top: int = 3) -> list[str]:
    """The largest off-diagonal cells, in words."""
    cells = sorted(((n, i, j) for i, row in enumerate(confusion) for j, n in enumerate(row) if i != j and n),
                   reverse=True)[:top]
    return [f"{names[i]} predicted as {names[j]}: {n} of {sum(confusion[i])} ({n / sum(confusion[i]):.0%})"
            for n, i, j in cells]


def margin_sentence(decision: dict, table: pd.DataFrame, n_val: int | None = None) -> str:
    """Who won, by how much, and whether the paired-bootstrap interval of the margin (champion.json) excludes 0."""
    champion, margin = decision["champion"], decision.get("margin")
    column, _ = CHAMPION_METRICS[decision["metric"]]
    won = f"{champion} won on {decision['metric']} with {decision['value']:.3f}"
    if not margin:
        candidates = table[table.get("family", pd.Series("", index=table.index)) != "baseline"]
        if len(candidates) <= 1:
            return f"{champion} was the only candidate model, so it is the champion by default."
        return won + "; no margin interval was recorded for this run."
    runner = table[table["model"] == margin["runner_up"]]
    ahead = (f", ahead of {margin['runner_up']}" + (f" ({runner[column].iloc[0]:.3f})" if len(runner) else ""))
    images = f"the same {n_val} validation images" if n_val else "the same validation images"
    level = f"{margin['level'] * 100:.0f} %"
    sentence = (f"{won}{ahead}. In {margin['metric']} its margin is {margin['difference']:+.3f}, with a {level} "
                f"paired-bootstrap interval of {margin['low']:+.3f} to {margin['high']:+.3f} ({margin['n_boot']:,} "
                f"resamples of {images}): ")
    if margin["distinguishable"]:
        return sentence + "the interval excludes 0, so this is a real difference."
    return sentence + (f"the interval holds 0, so the two are not distinguishable — {margin['runner_up']} would "
                       "serve as well.")


def promotion_sentence(decision: dict) -> str | None:
    """Whether the champion took the project's champion tag on the server (champion.json's promotion), and why; None
    for a run recorded before promotion existed."""
    promotion = decision.get("promotion")
    if not promotion:
        return None
    if promotion.get("tag") is None:
        return f"Promotion: {promotion['why']}."
    outcome = "took the project's champion tag" if promotion["crown"] else "was published as a candidate"
    return f"Promotion (promote={promotion['policy']}): {decision['champion']} {outcome}. {promotion['why']}"


def baseline_sentence(table: pd.DataFrame) -> str | None:
    """Do the CNNs beat the baselines? The best CNN (or ensemble) against the best baseline on validation macro-F1,
    and whether the CNN's interval lies above the baseline's value. None without baselines or without CNNs."""
    if "family" not in table:
        return None
    scored = table.dropna(subset=["val_macro_f1"])
    baselines, cnns = scored[scored["family"] == "baseline"], scored[scored["family"] != "baseline"]
    if baselines.empty or cnns.empty:
        return None
    best = cnns.sort_values("val_macro_f1", ascending=False, kind="stable").iloc[0]
    base = baselines.sort_values("val_macro_f1", ascending=False, kind="stable").iloc[0]
    difference = best["val_macro_f1"] - base["val_macro_f1"]
    kind = ("the ensemble" if best["model"] == "ensemble" else f"the ensemble, {best['model']}," if best["family"] ==
            "ensemble" else f"the best CNN, {best['model']},")
    numbers = f"{kind} has validation macro-F1 {best['val_macro_f1']:.3f}"
    low, high = best.get("val_macro_f1_low"), best.get("val_macro_f1_high")
    has_interval = not (_missing(low) or _missing(high))
    if has_interval:
        numbers += f" (95 % interval {low:.3f}–{high:.3f})"
    numbers += (f"; the best baseline, {base['model']}, has {base['val_macro_f1']:.3f}; difference "
                f"{difference:+.3f}")
    if not has_interval:
        verdict = "Yes" if difference > 0 else "No"
        return f"Do the CNNs beat the baselines? {verdict}: {numbers} (no interval recorded)."
    if low > base["val_macro_f1"]:
        return (f"Do the CNNs beat the baselines? Yes: {numbers}; the CNN's interval low end ({low:.3f}) is above "
                f"the baseline's value.")
    if difference > 0:
        return (f"Do the CNNs beat the baselines? Not clearly: {numbers}; the CNN's interval low end ({low:.3f}) is "
                f"not above the baseline's value, so the gain may be noise.")
    return (f"Do the CNNs beat the baselines? No: {numbers}; the CNN's interval low end ({low:.3f}) is not above the "
            f"baseline's value — a simple classifier of the pixels does as well or better.")


def external_sets(run: dict) -> dict[str, dict[str, dict]]:
    """{set name: {model: its metrics on that set}}, in the order the models list them."""
    sets: dict[str, dict[str, dict]] = {}
    for model, metrics in run["metrics"].items():
        for name, external in (metrics.get("external") or {}).items():
            sets.setdefault(name, {})[model] = external
    return sets


def _copies_sentence(name: str, external: dict) -> str:
    sentence = (f"{external['twins']} of {external['samples']} images of {name} ({external['twin_fraction']:.0%}) "
                f"have a near-copy (pHash within {DEFAULT_MAX_DISTANCE} bits) in the training folder")
    if external["twin_fraction"] > MOSTLY_COPIES:
        return sentence + (": most of this set are near-copies of training images, so its numbers are optimistic — "
                           "they re-test images the models have seen more than they test new ones; the novel "
                           "images' numbers are the fairer estimate.")
    return sentence + "."


def _external_conclusion(name: str, external: dict, held: dict, split: str) -> str:
    intervals = external.get("intervals", {})
    classes = external.get("classes") or []
    sentence = (f"External set {name} ({external['samples']} images, {len(classes)} classes): accuracy "
                f"{external['accuracy']:.3f}" + (f" (95 % interval {_ends(intervals['accuracy'])})"
                                                  if "accuracy" in intervals else "")
                + f" and macro-F1 {external['macro_f1']:.3f}" + (f" ({_ends(intervals['macro_f1'])})"
                                                                 if "macro_f1" in intervals else "")
                + f", against macro-F1 {held['macro_f1']:.3f} on the {SPLIT_NAMES[split]} split")
    novel = (external.get("near_copies") or {}).get("novel")
    if novel:
        sentence += f"; {novel['accuracy']:.3f} accuracy on its {novel['samples']} novel images"
    optimistic = ", so these numbers are optimistic." if external["twin_fraction"] > MOSTLY_COPIES else "."
    return (sentence + f". {external['twins']} of {external['samples']} ({external['twin_fraction']:.0%}) are "
            f"near-copies of training images{optimistic}")


def _family(table: pd.DataFrame, family: str) -> pd.DataFrame:
    return table[table["family"] == family] if "family" in table else table.iloc[0:0]


def transfer_sentence(run: dict, column: str, higher_is_better: bool, metric: str) -> str | None:
    """Custom CNNs vs transfer learning on the champion metric, naming each transfer model's weights."""
    table = run["table"]
    custom, transfer = _family(table, "custom_cnn"), _family(table, "transfer")
    if custom.empty or transfer.empty:
        return None
    best = custom.sort_values(column, ascending=not higher_is_better, kind="stable").iloc[0]
    parts, untrained = [], []
    for _, row in transfer.iterrows():
        record = run["training"].get(row["model"], {})
        tuned = record.get("fine_tune_layers") or 0
        how = f"{weights_text(record.get('weights'))}, " + (f"top {tuned} layers fine-tuned" if tuned else "frozen")
        parts.append(f"{row['model']} ({how}) {row[column]:.3f}")
        if weights_text(record.get("weights")) == "no pretrained weights":
            untrained.append(row["model"])
    sentence = (f"Custom CNNs vs transfer learning: best custom CNN {best['model']} {best[column]:.3f}, "
                + ", ".join(parts) + f" on {metric}.")
    if untrained:
        sentence += (f" {', '.join(untrained)} started from no pretrained weights, so this run says nothing about "
                     "what pretraining adds.")
    return sentence


def conclusion(run: dict) -> list[str]:
    """The conclusion's sentences, each computed from the run's numbers."""
    table, decision, data = run["table"], run["champion"], run["data"]
    champion = decision["champion"]
    metrics = run["metrics"][champion]
    column, higher_is_better = CHAMPION_METRICS[decision["metric"]]
    lines = [margin_sentence(decision, table, metrics["val"]["samples"])]
    split = heldout_split(metrics)
    held = metrics[split]
    names = data["class_names"]
    intervals = held.get("intervals")
    lines.append(f"On the {SPLIT_NAMES[split]} split ({held['samples']} images, never used to choose) it reaches "
                 f"accuracy {held['accuracy']:.3f} and macro-F1 {held['macro_f1']:.3f}"
                 + (f" (95 % intervals {_ends(intervals['accuracy'])} and {_ends(intervals['macro_f1'])})."
                    if intervals else "."))
    glioma = glioma_class(names)
    if glioma and intervals and (recall := intervals["recall"].get(glioma)) and recall["value"] is not None:
        errors = held["errors"][glioma]
        lines.append(f"Glioma recall (sensitivity) of {champion} on the {SPLIT_NAMES[split]} split: "
                     f"{recall['value']:.3f} (95 % interval {_ends(recall)}); it misses "
                     f"{errors['count'] - errors['correct']} of {errors['count']} glioma images.")
    recalls = {name: held["per_class"][name]["recall"] for name in names}
    weakest = min(recalls, key=recalls.get)
    lines.append("Per-class sensitivity (recall): " + ", ".join(f"{n} {r:.2f}" for n, r in recalls.items())
                 + f"; the weakest is {weakest}.")
    confusions = main_confusions(held["confusion_matrix"], names)
    lines.append("Main confusions: " + ("; ".join(confusions) if confusions else "none") + ".")
    if (beat := baseline_sentence(table)) is not None:
        lines.append(beat)
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
    externals = metrics.get("external") or {}
    lines += [_external_conclusion(name, external, held, split) for name, external in externals.items()]
    if (transfer := transfer_sentence(run, column, higher_is_better, decision["metric"])) is not None:
        lines.append(transfer)
    groups = data.get("near_duplicates", {})
    if externals:
        images = sum(e["samples"] for e in externals.values())
        mostly = [n for n, e in externals.items() if e["twin_fraction"] > MOSTLY_COPIES]
        scope = (f"external validation on {len(externals)} set{'s' if len(externals) > 1 else ''} "
                 f"({', '.join(externals)}; {images} images"
                 + (f", mostly near-copies of training images in {', '.join(mostly)}" if mostly else "")
                 + ") — still retrospective; a prospective, multi-centre evaluation is needed before any claim.")
    else:
        scope = "no external validation — an independent, multi-centre test set is needed before any claim."
    lines.append(f"Limits: {data['images_used']} images from one source"
                 + (f", {groups['images_in_groups_of_two_or_more']} of them in near-duplicate groups"
                    if groups else "")
                 + "; 2D slices without patient identifiers, so images of one patient may still span splits; "
                 + scope)
    if (shortcut := shortcut_limit(run)) is not None:
        lines.append(f"Limit, shortcut audit: {shortcut}")
    lines.append(NOT_CLINICAL)
    return lines


def recipe_text(record: dict) -> str:
    """A trained model's recipe in one line (its batch size apart: each model has its own)."""
    recipe = record["recipe"]
    optimizer = recipe["optimizer"] + (f" (weight decay {recipe['weight_decay']:g})" if recipe["optimizer"] == "adamw"
                                       else "")
    schedule = recipe["schedule"] + (f" with {recipe['warmup_epochs']} warm-up epochs" if recipe["warmup_epochs"]
                                     else "")
    return (f"{optimizer}, learning rate {recipe['lr']:g}, {schedule} schedule, {recipe['augment']} augmentation, "
            f"label smoothing {recipe['label_smoothing']:g}, up to {recipe['epochs']} epochs with early stopping on "
            f"{recipe['monitor']} (patience {recipe['patience']}), seed {record['seed']}, balanced class weights")


def _yes(value) -> str:
    return "yes" if value else "no"


def _scores(split_metrics: dict) -> str:
    """'accuracy 0.812 [0.771, 0.850], macro-F1 …' for a split or an external set."""
    return (f"accuracy {interval_text(_interval(split_metrics, 'accuracy'))}, "
            f"macro-F1 {interval_text(_interval(split_metrics, 'macro_f1'))}")


def _interval(split_metrics: dict, key: str) -> dict:
    """A split's interval for accuracy or macro_f1, or its bare value when it has no intervals."""
    return (split_metrics.get("intervals") or {}).get(key) or {"value": split_metrics[key]}


def model_card(run: dict) -> list[tuple[str, str]]:
    """The champion's card: what it is, how it was trained (an ensemble: its members' recipes), its input, data,
    metrics with their intervals, external results and caveats."""
    decision, data, table = run["champion"], run["data"], run["table"]
    champion = decision["champion"]
    training, metrics = run["training"][champion], run["metrics"][champion]
    split = heldout_split(metrics)
    splits = data.get("splits", {})
    design = table.loc[table["model"] == champion, "filters"].dropna() if "filters" in table else pd.Series()
    members = training.get("members") or {}
    trained = {m: run["training"][m] for m in members if m in run["training"]} if members else {champion: training}
    params = training["params"]
    card = [("Model", f"{champion} ({params['total']:,} parameters, {params['trainable']:,} trainable"
                      + (f"; {design.iloc[0]}" if len(design) else "") + f"); brain-tumor-clearml {__version__}"),
            ("Intended use", "Research and teaching: sorting single 2D brain MRI slices into "
                             + ", ".join(data["class_names"]) + ". " + NOT_CLINICAL)]
    if members:
        tta = ("each image averaged with its mirror image (test-time augmentation)" if training.get("tta")
               else "no test-time augmentation")
        vote = (f"{training['spec'].get('description', '')}: a soft vote (weighted mean of the members' "
                f"probabilities), members and weights chosen on validation; {tta}.")
        card.append(("Ensemble members", vote))
    recipes = {m: recipe_text(r) for m, r in trained.items() if "recipe" in r}
    if len(set(recipes.values())) == 1:
        card.append(("Training recipe", ("All members: " if members else "") + next(iter(recipes.values())) + "."))
    elif recipes:
        card.append(("Training recipe", "; ".join(f"{m}: {text}" for m, text in recipes.items()) + "."))
    batches = {m: r["batch_size"] for m, r in trained.items() if r.get("batch_size")}
    if batches:
        card.append(("Batch size", ", ".join(f"{m} {b}" for m, b in batches.items()) if members
                     else str(next(iter(batches.values())))))
    precisions = sorted({r["precision"] for r in trained.values() if r.get("precision")})
    if precisions:
        card.append(("Precision", f"{', '.join(precisions)} training; weights saved as float32."))
    for model, record in trained.items():
        if record["spec"].get("family") == "transfer":
            tuned = record.get("fine_tune_layers") or 0
            how = f"top {tuned} layers fine-tuned at a tenth of the learning rate" if tuned else "frozen"
            card.append((f"Backbone ({model})",
                         f"{record['spec'].get('backbone')} with {weights_text(record.get('weights'))}; {how}."))
    # per-image standardisation is a custom CNN's layer; a backbone keeps its own preprocessing
    normalize = {bool(r["recipe"].get("normalize")) for r in trained.values()
                 if "recipe" in r and r["spec"].get("family") == "custom_cnn"}
    standardise = ("; intensities standardised per image inside the custom CNNs" if True in normalize
                   else "; no per-image standardisation" if normalize else "")
    crop = "; cropped to the head's bounding box first" if training.get("crop") else "; not cropped"
    size = f"{training['image_size']}×{training['image_size']}"
    card.append(("Input", f"One RGB image resized to {size}{crop}{standardise}; the preprocessing is inside the "
                          + "saved model."))
    ece = metrics["calibration"][split]["ece"]
    card += [
        ("Training data", f"{data['train_dir']}: {data['images_used']} images used, {data['skipped_count']} skipped; "
                          + ", ".join(f"{SPLIT_NAMES[s]} {sum(c.values())}" for s, c in splits.items())
                          + " (grouped split: near-duplicates never straddle splits)."),
        ("Chosen on", f"{decision['metric']} = {decision['value']:.4f} (validation only)."),
        ("Metrics", f"{SPLIT_NAMES[split]}: {_scores(metrics[split])}, ECE {ece:.3f}; validation: "
                    + f"{_scores(metrics['val'])} (95 % bootstrap intervals)."),
    ]
    glioma = glioma_class(data["class_names"])
    if glioma and metrics[split].get("intervals"):
        recall = metrics[split]["intervals"]["recall"].get(glioma)
        card.append(("Glioma recall", f"{SPLIT_NAMES[split]}: {interval_text(recall)}."))
    externals = metrics.get("external") or {}
    card.append(("External validation", "; ".join(
        f"{name} ({e['samples']} images, {e['twin_fraction']:.0%} near-copies of training images): {_scores(e)}"
        for name, e in externals.items()) + "." if externals else "none (no --external-dir given)."))
    scope = ("External sets evaluated retrospectively only" if externals
             else "Single public dataset, no external validation")
    if (shortcut := shortcut_limit(run)) is not None:
        card.append(("Shortcut risk", shortcut))
    card.append(("Caveats", f"{scope}, no patient-level split information; probabilities are not calibrated risks; "
                            + "performance on other scanners and protocols is unknown."))
    return card


def style_baseline_table(baseline: dict) -> pd.DataFrame:
    """The style classifiers' out-of-fold accuracy and macro-F1 with their intervals, and the majority-class rate."""
    rows = [{"classifier": name.replace("_", " "), "features": "all style features",
             "accuracy [95 %]": interval_text(scores["accuracy"]), "macro-F1 [95 %]": interval_text(scores["macro_f1"])}
            for name, scores in baseline["models"].items()]
    if baseline.get("geometry"):
        geometry = baseline["geometry"]
        rows.append({"classifier": "random forest", "features": ", ".join(geometry["features"]),
                     "accuracy [95 %]": interval_text(geometry["accuracy"]),
                     "macro-F1 [95 %]": interval_text(geometry["macro_f1"])})
    rows.append({"classifier": f"always {baseline['majority_class']} (chance)", "features": "none",
                 "accuracy [95 %]": f"{baseline['majority_rate']:.3f}", "macro-F1 [95 %]": "–"})
    return pd.DataFrame(rows)


def background_table(run: dict) -> pd.DataFrame:
    """Per model, each class's mean Grad-CAM share outside the head (⚠: above the flag threshold)."""
    rows = []
    for model, metrics in run["metrics"].items():
        background = measured_background(metrics)
        if not background:
            continue
        row = {"model": model, "split": SPLIT_NAMES.get(background.get("split"), "")}
        for name, entry in background["per_class"].items():
            row[name] = f"{entry['mean']:.2f}" + (" ⚠" if entry["flagged"] else "") + f" (n={entry['images']})"
        rows.append(row)
    return pd.DataFrame(rows)


def external_style_table(shift: dict) -> pd.DataFrame:
    """One row per style feature; per class, the training split's median / the external set's (⚠: outside the
    training class's range)."""
    shifted = {(s["class"], s["feature"]) for s in shift["shifts"]}
    rows = []
    for feature in STYLE_FEATURES:
        row = {"feature": feature}
        for name, entry in shift["classes"].items():
            values = entry["features"].get(feature)
            row[f"{name}: training / external"] = (f"{values['training']:.3g} / {values['external']:.3g}"
                                                   + (" ⚠" if (name, feature) in shifted else "")) if values else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def recipe_table(run: dict) -> pd.DataFrame:
    """One row per trained model: the recipe it actually trained with, and what early stopping kept."""
    rows = []
    for model, record in run["training"].items():
        if "recipe" not in record:  # the ensemble trains nothing of its own
            continue
        recipe, transfer = record["recipe"], record["spec"].get("family") == "transfer"
        rows.append({
            "model": model,
            "optimizer": recipe["optimizer"] + (f" (wd {recipe['weight_decay']:g})" if recipe["optimizer"] == "adamw"
                                                else ""),
            "lr": f"{recipe['lr']:g}",
            "schedule": recipe["schedule"] + (f" (+{recipe['warmup_epochs']} warm-up)" if recipe["warmup_epochs"]
                                              else ""),
            "augmentation": recipe["augment"],
            "label smoothing": f"{recipe['label_smoothing']:g}",
            "epochs run / best": f"{record['epochs_run']} / {record['best_epoch']}",
            "max epochs (patience)": f"{recipe['epochs']} ({recipe['patience']})",
            "monitor: best": f"{record['monitor']}: {record['best_monitor']:.4f}",
            "batch": record["batch_size"],
            "precision": record.get("precision", ""),
            "crop": _yes(record.get("crop", recipe.get("crop"))),
            "normalize": "–" if transfer else _yes(recipe.get("normalize")),  # a custom CNN's layer only
            "weights": weights_text(record.get("weights")) if transfer else "–",
            "fine-tuned layers": (record.get("fine_tune_layers") or 0) if transfer else "–",
        })
    return pd.DataFrame(rows)


def interval_table(metrics: dict, splits: list[str]) -> pd.DataFrame:
    """Rows accuracy, macro-F1 and each class's recall (glioma first); one column per split: value [95 % interval]."""
    names = glioma_first(list(metrics[splits[0]].get("intervals", {}).get("recall", {})))
    rows = [{"metric": "accuracy"}, {"metric": "macro-F1"}]
    rows += [{"metric": f"recall {n}" + (" (sensitivity)" if n == glioma_class(names) else "")} for n in names]
    for split in splits:
        intervals = metrics[split].get("intervals") or {}
        header = f"{SPLIT_NAMES[split]} [95 % interval]"
        values = [interval_text(intervals.get("accuracy")), interval_text(intervals.get("macro_f1"))]
        values += [interval_text(intervals.get("recall", {}).get(n)) for n in names]
        for row, value in zip(rows, values):
            row[header] = value
    return pd.DataFrame(rows)


def external_table(set_metrics: dict[str, dict]) -> pd.DataFrame:
    """One row per model on one external set: accuracy and macro-F1 with intervals, per-class recall (glioma first,
    with its interval), the near-copies of training images and the metrics on them vs on the novel images."""
    rows = []
    for model, external in set_metrics.items():
        recall = (external.get("intervals") or {}).get("recall", {})
        names = glioma_first(list(recall) or [n for n in external["per_class"] if n in external.get("classes", [])])
        row = {"model": model,
               "accuracy [95 %]": interval_text(_interval(external, "accuracy")),
               "macro-F1 [95 %]": interval_text(_interval(external, "macro_f1"))}
        for name in names:
            entry = recall.get(name) or {"value": external["per_class"].get(name, {}).get("recall")}
            if name not in external.get("classes", names):
                row[f"recall {name}"] = "absent"
            elif name == glioma_class(names):
                row[f"recall {name} [95 %]"] = interval_text(entry)
            else:
                row[f"recall {name}"] = interval_text({"value": entry.get("value")})
        row["near-copies (share)"] = f"{external['twins']} ({external['twin_fraction']:.0%})"
        for kind, label in (("twin", "near-copies"), ("novel", "novel images")):
            part = (external.get("near_copies") or {}).get(kind)
            row[f"{label}: accuracy / macro-F1"] = (f"{part['accuracy']:.3f} / {part['macro_f1']:.3f} "
                                                    f"(n={part['samples']})" if part else "–")
        rows.append(row)
    return pd.DataFrame(rows)


def mix_text(members: dict[str, float], tta: bool) -> str:
    """{"cnn_a": 0.6, "resnet50": 0.4} → '0.60·cnn_a + 0.40·resnet50' (as the ensemble step describes its vote)."""
    return " + ".join(f"{w:.2f}·{m}" for m, w in members.items()) + (" (with mirror images)" if tta else "")


def ensemble_sentence(run: dict) -> str:
    """The ensemble step's outcome in one sentence: built or not, and by how much the best mix beat or lost to the
    best single model on validation."""
    record = run["ensemble"]
    if record is None:
        built = run["training"].get("ensemble")
        return (f"Ensemble built: {built['spec'].get('description')} (this run folder does not record the "
                "candidates' scores: it was made before the ensemble step recorded them)." if built else
                "No record of the ensemble step in this run folder (made before the step recorded its outcome), "
                "and no ensemble was built.")
    if record["decision"] in ("off", "too_few"):
        names = ", ".join(c["model"] for c in record["candidates"]) or "none"
        return f"{record['sentence']}; trained models: {names}."
    single, chosen, mix = record["best_single"], record["chosen"], record["best_mix"]
    metric = record["metric"].replace("val_", "validation ").replace("macro_f1", "macro-F1")
    if record["decision"] == "built":
        return (f"Ensemble built: {mix_text(chosen['members'], chosen['tta'])}, {metric} "
                f"{chosen['val_macro_f1']:.3f} against {single['val_macro_f1']:.3f} for the best single model, "
                f"{single['model']} ({chosen['val_macro_f1'] - single['val_macro_f1']:+.3f}); it is evaluated like "
                "every model and competes for champion.")
    alone = next(iter(chosen["members"]))
    sentence = f"No ensemble: on validation no mix beats {alone} alone"
    if mix:
        sentence += (f"; the best mix tried, {mix_text(mix['members'], mix['tta'])}, has {metric} "
                     f"{mix['val_macro_f1']:.3f} against {chosen['val_macro_f1']:.3f} for {alone} alone"
                     + (" with mirror images" if chosen["tta"] else "")
                     + f" ({mix['val_macro_f1'] - chosen['val_macro_f1']:+.3f})")
    return sentence + "."


def search_table(record: dict) -> pd.DataFrame:
    """Both greedy searches round by round: the vote each round starts from, then each candidate's score if added to
    it (✓: the one added; a round with none is where the search stopped)."""
    names = [c["model"] for c in record["candidates"]]
    rows = []
    for kind, trace in record["searches"].items():
        for number, round_ in enumerate(trace, 1):
            start = {m: c / sum(round_["members"].values()) for m, c in round_["members"].items()}
            rows.append({"probabilities": "with mirror images" if kind == "mirror" else "as they are",
                         "round": number, "starts from": mix_text(start, False) or "–",
                         **{f"+ {name}": f"{round_['scores'][name]:.3f}" + (" ✓" if round_["added"] == name else "")
                            for name in names}})
    return pd.DataFrame(rows)


def step_outcomes(run: dict) -> list[dict]:
    """Every pipeline step and what came of it, with the section that shows it."""
    data, leak, champion = run["data"], run["leakage"], run["champion"]
    splits = {SPLIT_NAMES[s]: sum(c.values()) for s, c in data.get("splits", {}).items()}
    trained = {m: r for m, r in run["training"].items() if "recipe" in r}
    weights = next((r["class_weights"] for r in trained.values() if r.get("class_weights")), None)
    rows = [{"step": "register_dataset", "section": "exploration",
             "outcome": f"{data['images_used']} images used, {data['skipped_count']} skipped; "
                        + ", ".join(f"{n} {name}" for name, n in splits.items())
                        + f"; {leak['twins']} of {leak['test_images']} test images have a near-duplicate in training "
                          "or validation"},
            {"step": "class_weights", "section": "training",
             "outcome": ("balanced class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in weights.items()))
             if weights else "class weights not recorded"}]
    rows += [{"step": f"train_{model}", "section": "training",
              "outcome": f"{r['epochs_run']} epochs, best epoch {r['best_epoch']} ({r['monitor']} "
                         f"{r['best_monitor']:.4f}); {r['train_seconds']:.0f} s"} for model, r in trained.items()]
    evaluated = [m for m in run["metrics"] if m in trained]
    sets = external_sets(run)
    rows += [{"step": "evaluate", "section": "evaluation",
              "outcome": f"{len(evaluated)} models evaluated ({', '.join(evaluated)})"
                         + (f", also on {', '.join(sets)}" if sets else "")},
             {"step": "ensemble", "section": "ensemble", "outcome": ensemble_sentence(run)},
             {"step": "baselines", "section": "comparison",
              "outcome": ", ".join(f"{m}: validation macro-F1 {v['val']['macro_f1']:.3f}"
                                   for m, v in run["baseline_metrics"].items()) or "no baselines in this run"},
             {"step": "select_champion", "section": "comparison",
              "outcome": f"champion {champion['champion']} ({champion['metric']} {champion['value']:.4f})"
                         + (f". {promotion_sentence(champion)}" if champion.get("promotion") else "")}]
    titles = dict(SECTIONS)
    return [{**row, "title": titles[row["section"]]} for row in rows]


def _exploration(run: dict, folder: Path) -> dict:
    data = run["data"]
    splits = pd.DataFrame(data.get("splits", {})).rename(columns=SPLIT_NAMES)
    splits["total"] = splits.sum(axis=1)
    train = data.get("splits", {}).get("train", {})
    return {"splits": _table(splits.rename_axis("class").reset_index()),
            "ratio": max(train.values()) / max(min(train.values()), 1) if train else float("nan"),
            "figures": _figures(folder, ["class_counts.png", SAMPLES]), "data": data,
            "modes": ", ".join(f"{k} {v}" for k, v in data.get("modes", {}).items()),
            "skipped": _table(pd.DataFrame(data["skipped"])) if data["skipped"] else None}


def _leakage(run: dict, folder: Path) -> dict:
    rows = [{"model": m, **{f"{kind} {key}": (values or {}).get(key) for kind, values in
                            (metrics.get("leakage") or {}).items() for key in ("samples", "accuracy", "macro_f1")}}
            for m, metrics in run["metrics"].items()]
    leak = run["leakage"]
    return {"leak": leak, "random": leak["random_split"],
            "figures": _figures(folder, ["leakage_distances.png", TWINS]),
            "pairs": _table(pd.DataFrame(leak["pairs"])) if leak["pairs"] else None,
            "closest": _figures(folder, [CLOSEST]), "models": _table(pd.DataFrame(rows))}


def _shortcuts(run: dict, folder: Path, evaluation: Path) -> dict:
    shortcuts = run["shortcuts"]
    baseline, medians = shortcuts["baseline"], shortcuts["medians"]
    values = {"features": [f"{name}: {text}" for name, text in STYLE_FEATURES.items()], "baseline": baseline,
              "medians": _table(medians, small=True) if baseline and medians is not None else None}
    if baseline:
        values.update(figures=_figures(folder, [STYLE_FIGURE]), scores=_table(style_baseline_table(baseline)),
                      importances=_table(pd.DataFrame(baseline["importances"])))
    background = background_table(run)
    values["background"] = None
    if not background.empty:
        flagged = {model: background_flags(metrics) for model, metrics in run["metrics"].items()}
        values["background"] = {
            "measured": next(b for m in run["metrics"].values() if (b := measured_background(m))),
            "table": _table(background, small=True),
            "flagged": {model: ", ".join(classes) for model, classes in flagged.items() if classes},
            "figures": [f for model in run["metrics"] for f in _figures(evaluation / model, [BACKGROUND_FIGURE])]}
    external = shortcuts["external"] or {}
    values["external"] = [
        {"name": name, "shift": shift,
         **({"table": _table(external_style_table(shift), small=True),
             "figures": _figures(folder, [external_figure_name(name, "style")])} if shift is not None else {})}
        for name in external_sets(run) for shift in [external.get(name)]]
    return values


def _training(run: dict, folder: Path) -> dict:
    recipes = recipe_table(run)
    models = []
    for model, record in run["training"].items():
        if "recipe" not in record:
            members = " + ".join(f"{w:.2f}·{m}" for m, w in (record.get("members") or {}).items())
            models.append({"name": model, "built": (
                f"No training of its own: a soft vote of {record['spec'].get('description') or members}, members "
                f"and weights chosen on validation; {record['params']['total']:,} parameters in all; built in "
                f"{record['train_seconds']:.0f} s; no training curves.")})
            continue
        history = run["histories"].get(model, [])
        tuned = fine_tune_start(history)
        text = (f"{record['params']['total']:,} parameters ({record['params']['trainable']:,} trainable); "
                f"{record['epochs_run']} epochs run, best epoch {record['best_epoch']} by {record['monitor']} "
                f"({record['best_monitor']:.4f}; validation loss {record['best_val_loss']:.4f}); "
                f"{record['train_seconds']:.0f} s.")
        if tuned is not None:
            stage = "fine-tune" if record["best_epoch"] >= tuned else "frozen"
            text += (f" Fine-tuning of the top {record.get('fine_tune_layers')} backbone layers, at a tenth of the "
                     f"learning rate, from epoch {tuned} ({record['epochs_run'] - tuned + 1} epochs, marked on the "
                     f"curves); the kept epoch is in the {stage} stage.")
        summary = folder / model / "summary.txt"
        models.append({"name": model, "built": None, "text": text, "figures": _figures(folder / model, ["curves.png"]),
                       "summary": summary.read_text() if summary.is_file() else None})
    return {"recipes": _table(recipes, small=True) if not recipes.empty else None, "models": models}


def _glioma_recall(split_metrics: dict) -> dict | None:
    glioma = glioma_class(split_metrics.get("intervals", {}).get("recall", {}))
    recall = split_metrics.get("intervals", {}).get("recall", {}).get(glioma) if glioma else None
    return None if not recall or recall["value"] is None else {**recall, "ends": _ends(recall)}


def _evaluation(run: dict, folder: Path) -> dict:
    models = []
    for model, metrics in run["metrics"].items():
        split = heldout_split(metrics)
        held = metrics[split]
        per_class = {k: v for k, v in held["per_class"].items() if k != "accuracy"}  # accuracy is in the line above
        report = pd.DataFrame(per_class).T.rename_axis("class").reset_index()
        models.append({
            "name": model, "split": SPLIT_NAMES[split], "held": held, "glioma": _glioma_recall(held),
            "intervals": (_table(interval_table(metrics, list(dict.fromkeys(["val", split]))))
                          if held.get("intervals") else None),
            "report": _table(report), "confusion": _figures(folder / model, ["confusion.png"]),
            "errors": [e["text"] for e in held["errors"].values()],
            "predictions": _figures(folder / model, [PREDICTIONS]), "overfitting": metrics["overfitting"]})
    rows = []
    for model, metrics in run["baseline_metrics"].items():
        split = heldout_split(metrics)
        glioma = glioma_class(metrics[split].get("intervals", {}).get("recall", {}))
        rows.append({"baseline": model,
                     "validation accuracy": interval_text(_interval(metrics["val"], "accuracy")),
                     "validation macro-F1": interval_text(_interval(metrics["val"], "macro_f1")),
                     f"{SPLIT_NAMES[split]} accuracy": interval_text(_interval(metrics[split], "accuracy")),
                     f"{SPLIT_NAMES[split]} macro-F1": interval_text(_interval(metrics[split], "macro_f1")),
                     f"{SPLIT_NAMES[split]} glioma recall": interval_text(
                         metrics[split].get("intervals", {}).get("recall", {}).get(glioma))})
    return {"models": models, "baselines": _table(pd.DataFrame(rows)) if rows else None}


def _external(run: dict, folder: Path) -> dict:
    champion = run["champion"]["champion"]
    sets = []
    for name, by_model in external_sets(run).items():
        first = by_model.get(champion) or next(iter(by_model.values()))
        skipped = first.get("skipped") or []
        sets.append({"name": name, "copies": _copies_sentence(name, first),
                     "mostly_copies": first["twin_fraction"] > MOSTLY_COPIES,
                     "what": (f"Folder {first.get('folder', '')}: {first['samples']} images of "
                              f"{', '.join(first.get('classes', []))}"
                              + (f"; {len(skipped)} files skipped" if skipped else "") + "."),
                     "table": _table(external_table(by_model), small=True),
                     "figures": (_figures(folder / champion, [external_figure_name(name)]) if champion in by_model
                                 else None)})
    return {"sets": sets, "champion": champion, "max_distance": DEFAULT_MAX_DISTANCE}


def _calibration(run: dict, folder: Path) -> dict:
    rows = [{"model": m, **{f"ECE {SPLIT_NAMES[s]}": c["ece"] for s, c in metrics["calibration"].items()}}
            for m, metrics in run["metrics"].items()]
    return {"table": _table(pd.DataFrame(rows)),
            "figures": [f for model in run["metrics"] for f in _figures(folder / model, ["reliability.png"])]}


def _ensemble(run: dict) -> dict:
    record = run["ensemble"]
    searched = record is not None and "searches" in record
    return {"sentence": ensemble_sentence(run), "built": "ensemble" in run["training"], "record": record,
            "candidates": _table(pd.DataFrame([{"model": c["model"], "validation macro-F1": f"{c['val_macro_f1']:.3f}",
                                                "with mirror images": f"{c['val_macro_f1_mirror']:.3f}"}
                                               for c in record["candidates"]])) if searched else None,
            "search": _table(search_table(record), small=True) if searched else None}


def _comparison(run: dict, folder: Path) -> dict:
    return {"table": _table(run["table"], small=True), "baselines": bool(run["baselines"]),
            "beat": baseline_sentence(run["table"]), "champion": run["champion"],
            "figures": _figures(folder, ["comparison.png", "curves_all.png", "custom_vs_transfer.png"]),
            "promotion": promotion_sentence(run["champion"])}


def _overview(run: dict) -> dict:
    champion, models = run["champion"], run["models"]
    trained = [m for m in models if "recipe" in run["training"][m]]
    built = [m for m in models if m not in trained]
    sets = external_sets(run)
    return {"text": f"Run folder {run['run_dir'].name}: {len(trained)} models trained ({', '.join(trained)}) on "
                    f"{run['data']['images_used']} images" + (f", plus {', '.join(built)}" if built else "")
                    + (f" and {len(run['baselines'])} baselines ({', '.join(run['baselines'])})"
                       if run["baselines"] else "")
                    + (f"; external sets: {', '.join(sets)}" if sets else "; no external set")
                    + f"; champion {champion['champion']} ({champion['metric']} {champion['value']:.4f}).",
            "steps": step_outcomes(run)}


def render(run: dict) -> str:
    """report.html's text for a loaded run."""
    figures = report_dir(run["run_dir"])
    bodies = {
        "overview": _overview(run),
        "exploration": _exploration(run, figures / "exploration"),
        "leakage": _leakage(run, figures / "leakage"),
        "shortcuts": _shortcuts(run, figures / "shortcuts", figures / "evaluation"),
        "training": _training(run, figures / "models"),
        "evaluation": _evaluation(run, figures / "evaluation"),
        "external": _external(run, figures / "evaluation"),
        "calibration": _calibration(run, figures / "evaluation"),
        "ensemble": _ensemble(run),
        "comparison": _comparison(run, figures / "comparison"),
        "conclusion": {"lines": conclusion(run)},
        "model-card": {"card": model_card(run)},
    }
    return TEMPLATES.get_template("base.html").render(run_name=run["run_dir"].name, not_clinical=NOT_CLINICAL,
                                                      sections=SECTIONS, bodies=bodies)


def build_report(run_dir: str | Path) -> Path:
    """Write RUN/report.html from the run folder's files and figures; returns its path."""
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    path.write_text(render(load_run(run_dir)))
    return path
