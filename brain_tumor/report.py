"""One self-contained `report.html` for a run folder: every figure embedded, a table of contents, the conclusion and
the champion's model card written from the run's own numbers. Opens offline; holds no credentials (it is made only
from the run folder's data files and figures).

The page is Jinja2 templates (`templates/`: `base.html` and one `sections/<key>.html` per section, autoescaped);
this module reads the run folder and computes what each section shows: its tables (header and cells as text),
figures (`embed`) and the sentences `report_text` writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jinja2
import pandas as pd

from .embed import embedded
from .figures import (BACKGROUND_FIGURE, CLOSEST, EXTERNAL_STYLE, PHOTO_GRIDS, PREDICTIONS, SAMPLES, STYLE_BASELINE,
                      STYLE_FIGURE, STYLE_MEDIANS, TWINS, ensemble_selection, external_figure_name, heldout_split,
                      report_dir)
from .images import STYLE_FEATURES
from .plots import fine_tune_start
from .report_text import (MOSTLY_COPIES, NOT_CLINICAL, SPLIT_NAMES, background_flags, baseline_sentence, conclusion,
                          copies_sentence, ends_text, ensemble_sentence, external_sets, glioma_class, glioma_first,
                          interval_text, mix_text, model_card, promotion_sentence, split_interval, weights_text,
                          yes_no)
from .shortcuts import measured_background
from .split import DEFAULT_MAX_DISTANCE

SECTIONS = [("overview", "Overview"), ("exploration", "Data exploration"), ("leakage", "Leakage audit"),
            ("shortcuts", "Shortcut audit"), ("training", "Training"), ("evaluation", "Evaluation"),
            ("external", "External validation"), ("calibration", "Calibration"), ("ensemble", "Ensemble"),
            ("comparison", "Comparison"), ("conclusion", "Conclusion"), ("model-card", "Model card")]

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
            "crop": yes_no(record.get("crop", recipe.get("crop"))),
            "normalize": "–" if transfer else yes_no(recipe.get("normalize")),  # a custom CNN's layer only
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
               "accuracy [95 %]": interval_text(split_interval(external, "accuracy")),
               "macro-F1 [95 %]": interval_text(split_interval(external, "macro_f1"))}
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
    return None if not recall or recall["value"] is None else {**recall, "ends": ends_text(recall)}


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
                     "validation accuracy": interval_text(split_interval(metrics["val"], "accuracy")),
                     "validation macro-F1": interval_text(split_interval(metrics["val"], "macro_f1")),
                     f"{SPLIT_NAMES[split]} accuracy": interval_text(split_interval(metrics[split], "accuracy")),
                     f"{SPLIT_NAMES[split]} macro-F1": interval_text(split_interval(metrics[split], "macro_f1")),
                     f"{SPLIT_NAMES[split]} glioma recall": interval_text(
                         metrics[split].get("intervals", {}).get("recall", {}).get(glioma))})
    return {"models": models, "baselines": _table(pd.DataFrame(rows)) if rows else None}


def _external(run: dict, folder: Path) -> dict:
    champion = run["champion"]["champion"]
    sets = []
    for name, by_model in external_sets(run).items():
        first = by_model.get(champion) or next(iter(by_model.values()))
        skipped = first.get("skipped") or []
        sets.append({"name": name, "copies": copies_sentence(name, first),
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
