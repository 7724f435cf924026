"""What report.html says about a run, in sentences computed from its numbers: the conclusion, the champion's model
card, and the sentences sections share (intervals, the margin, the baselines, external sets, the ensemble's outcome)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from . import __version__
from .figures import heldout_split
from .selection import CHAMPION_METRICS
from .shortcuts import measured_background
from .split import DEFAULT_MAX_DISTANCE

NOT_CLINICAL = "Research prototype — not for clinical use."
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
MOSTLY_COPIES = 0.5  # above this share of near-copies of training images, an external set mostly re-tests training


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


def ends_text(entry: dict, digits: int = 3) -> str:
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


def copies_sentence(name: str, external: dict) -> str:
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
                f"{external['accuracy']:.3f}" + (f" (95 % interval {ends_text(intervals['accuracy'])})"
                                                  if "accuracy" in intervals else "")
                + f" and macro-F1 {external['macro_f1']:.3f}" + (f" ({ends_text(intervals['macro_f1'])})"
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
                 + (f" (95 % intervals {ends_text(intervals['accuracy'])} and {ends_text(intervals['macro_f1'])})."
                    if intervals else "."))
    glioma = glioma_class(names)
    if glioma and intervals and (recall := intervals["recall"].get(glioma)) and recall["value"] is not None:
        errors = held["errors"][glioma]
        lines.append(f"Glioma recall (sensitivity) of {champion} on the {SPLIT_NAMES[split]} split: "
                     f"{recall['value']:.3f} (95 % interval {ends_text(recall)}); it misses "
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


def yes_no(value) -> str:
    return "yes" if value else "no"


def _scores(split_metrics: dict) -> str:
    """'accuracy 0.812 [0.771, 0.850], macro-F1 …' for a split or an external set."""
    return (f"accuracy {interval_text(split_interval(split_metrics, 'accuracy'))}, "
            f"macro-F1 {interval_text(split_interval(split_metrics, 'macro_f1'))}")


def split_interval(split_metrics: dict, key: str) -> dict:
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
