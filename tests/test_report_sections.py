"""The report's sections on small hand-built run folders (no training): trained models, the ensemble, baselines and
external sets, each present or absent; the numbers shown are the metrics files' numbers."""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brain_tumor.calibration import reliability
from brain_tumor.evaluation import evaluate_predictions, overfitting_check
from brain_tumor.leakage import twin_metrics
from brain_tumor.model_specs import spec_dict
from brain_tumor.recipe import Recipe
from brain_tumor.report import SECTIONS, baseline_sentence, build_report, conclusion, load_run, model_card
from brain_tumor.images import STYLE_FEATURES
from brain_tumor.selection import comparison_row, comparison_table
from brain_tumor.shortcuts import BACKGROUND_FLAG, style_audit, style_shift
from brain_tumor.synthetic import CLASS_NAMES

RECIPE = Recipe(optimizer="adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine", warmup_epochs=1, augment="light",
                label_smoothing=0.1, epochs=6, patience=3, monitor="val_macro_f1", batch_size=0, crop=False,
                normalize=True)
SIZES = {"train": 80, "val": 40, "test": 40}
# name → (images, near-copy share, classes present): "hospital" mostly novel, "mirror" mostly near-copies
EXTERNAL = {"hospital": (30, 0.2, [0, 1, 2, 3]), "mirror": (20, 0.75, [0, 2, 3])}


def probabilities(rng, labels: np.ndarray, skill: float) -> np.ndarray:
    """Right with probability `skill`, else a random class; confident but not one-hot."""
    predicted = np.where(rng.random(len(labels)) < skill, labels, rng.integers(0, 4, len(labels)))
    probs = rng.uniform(0.02, 0.2, (len(labels), 4))
    probs[np.arange(len(labels)), predicted] = rng.uniform(0.5, 0.95, len(labels))
    return probs / probs.sum(axis=1, keepdims=True)


def style_frame(rng, n: int, classes: list[int], planted: bool) -> pd.DataFrame:
    """Style features as scan measures them; with `planted`, no_tumor files are smaller and brighter."""
    labels = np.array(classes)[np.arange(n) % len(classes)]
    other = planted & (labels == 2)
    side = np.where(other, rng.integers(200, 280, n), 512).astype(float)
    frame = pd.DataFrame({"class": [CLASS_NAMES[i] for i in labels], "width": side, "height": side, "aspect": 1.0,
                          "bands": 3.0, "mean": rng.normal(40, 5, n) + 15 * other, "std": rng.normal(45, 4, n),
                          "foreground": rng.uniform(0.4, 0.6, n)})
    for name, centre in (("fg_p10", 45), ("fg_p50", 75), ("fg_p90", 125)):
        frame[name] = rng.normal(centre, 5, n) + 15 * other
    return frame[["class", *STYLE_FEATURES]]


def background(rng, flagged: set[str]) -> dict:
    """metrics[model]["shortcuts"]["background"] as shortcuts.gradcam_background and evaluate write it."""
    per_class = {name: {"images": 10, "mean": float(rng.uniform(0.55, 0.8) if name in flagged
                                                   else rng.uniform(0.1, 0.45)), "flagged": name in flagged}
                 for name in CLASS_NAMES}
    return {"split": "test", "threshold": BACKGROUND_FLAG, "images_per_class": 40, "explained": "predicted class",
            "per_class": per_class, "flagged": [name for name in CLASS_NAMES if name in flagged]}


def write_shortcuts(folder: Path, rng, planted: bool, external: bool) -> None:
    """The shortcut audit's files as register_dataset and evaluate write them (figures left out)."""
    out = folder / "report" / "shortcuts"
    out.mkdir(parents=True)
    training = style_frame(rng, 160, [0, 1, 2, 3], planted)
    audit = style_audit(training, CLASS_NAMES, seed=0)
    audit["medians"].to_csv(out / "style_medians.csv")
    (out / "style_baseline.json").write_text(json.dumps(audit["baseline"]))
    if external:
        shifts = {name: style_shift(training, style_frame(rng, n, present, planted=name == "mirror"), CLASS_NAMES)
                  for name, (n, _, present) in EXTERNAL.items()}
        (out / "external_style.json").write_text(json.dumps(shifts))


def model_metrics(rng, skill: float, external: bool) -> dict:
    """Metrics as steps/evaluate.py writes them, from random predictions of a given skill."""
    metrics, calibration = {}, {}
    for split, n in SIZES.items():
        labels = np.arange(n) % 4
        probs = probabilities(rng, labels, skill)
        metrics[split] = evaluate_predictions(labels, probs, CLASS_NAMES)
        calibration[split] = reliability(probs, labels)
        if split == "test":
            metrics["leakage"] = twin_metrics(labels, probs, np.arange(n) < 5, CLASS_NAMES)
    metrics.update(calibration=calibration, dataset_hash="0" * 64,
                   overfitting=overfitting_check(metrics["train"]["accuracy"], metrics["val"]["accuracy"]))
    metrics["external"] = {}
    for name, (n, share, present) in (EXTERNAL.items() if external else []):
        labels = np.array(present)[np.arange(n) % len(present)]
        probs = probabilities(rng, labels, skill - 0.2)
        is_twin = np.arange(n) < round(share * n)
        metrics["external"][name] = {
            **evaluate_predictions(labels, probs, CLASS_NAMES, labels=present), "folder": f"/data/{name}",
            "classes": [CLASS_NAMES[i] for i in present], "twins": int(is_twin.sum()),
            "twin_fraction": float(is_twin.mean()), "near_copies": twin_metrics(labels, probs, is_twin, CLASS_NAMES),
            "skipped": []}
    return metrics


def training_record(model: str, fine_tune: int = 0, weights: str | None = None) -> dict:
    """training.json as brain_tumor.experiment.train_and_save writes it."""
    spec = spec_dict(model)
    transfer = spec["family"] == "transfer"
    epochs = 4 + (2 if fine_tune else 0)
    return {"model": model, "spec": spec, "params": {"total": 1000 * len(model), "trainable": 900 * len(model),
                                                     "non_trainable": 100 * len(model)},
            "recipe": asdict(RECIPE), "batch_size": spec["batch_size"], "seed": 42, "precision": "bfloat16",
            "class_names": CLASS_NAMES, "image_size": 32, "crop": False,
            "class_weights": dict.fromkeys(CLASS_NAMES, 1.0), "weights": (weights or "none") if transfer else None,
            "fine_tune_layers": fine_tune, "epochs_run": epochs, "best_epoch": epochs - 1, "monitor": "val_macro_f1",
            "best_monitor": 0.5, "best_val_loss": 0.9, "monitor_mode": "max", "train_seconds": 12.0}


def history(epochs: int, fine_tune_from: int | None = None) -> list[dict]:
    return [{"epoch": e, "accuracy": 0.5, "loss": 1.0, "macro_f1": 0.5, "val_accuracy": 0.4, "val_loss": 1.1,
             "val_macro_f1": 0.4, "learning_rate": 1e-3, "epoch_seconds": 1.0,
             "stage": "fine-tune" if fine_tune_from and e >= fine_tune_from else "train"} for e in range(1, epochs + 1)]


def make_run(folder: Path, ensemble: bool = True, baselines: bool = True, external: bool = True,
             champion: str | None = None, margin: dict | None = None, fine_tune: int = 0,
             shortcuts: str | None = "planted") -> Path:
    """A run folder with the files report.py reads (figures left out: the report skips missing ones). `shortcuts`:
    "planted" (no_tumor files smaller and brighter; cnn_b's Grad-CAM mostly outside the head for glioma), "none"
    (one style, every Grad-CAM on the head) or None (a run made before the shortcut audit)."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    (folder / "report" / "leakage").mkdir(parents=True)
    (folder / "metrics").mkdir()
    skills = {"cnn_a": 0.8, "cnn_b": 0.6, "resnet50": 0.7}
    rows = []
    for model, skill in skills.items():
        record = training_record(model, fine_tune if model == "resnet50" else 0)
        metrics = model_metrics(rng, skill, external)
        if shortcuts:
            flagged = {"glioma_tumor"} if shortcuts == "planted" and model == "cnn_b" else set()
            metrics["shortcuts"] = {"background": background(rng, flagged)}
        (folder / "models" / model).mkdir(parents=True)
        (folder / "models" / model / "training.json").write_text(json.dumps(record))
        (folder / "models" / model / "history.json").write_text(json.dumps(
            history(record["epochs_run"], 5 if record["fine_tune_layers"] else None)))
        (folder / "metrics" / f"{model}.json").write_text(json.dumps(metrics))
        rows.append(comparison_row(record, metrics))
    if ensemble:
        record = {"model": "ensemble", "spec": {"name": "ensemble", "family": "ensemble",
                                                "description": "0.60·cnn_a + 0.40·resnet50 (with mirror images)"},
                  "members": {"cnn_a": 0.6, "resnet50": 0.4}, "tta": True,
                  "params": {"total": 9000, "trainable": 8000, "non_trainable": 1000}, "image_size": 32,
                  "crop": False, "class_names": CLASS_NAMES, "train_seconds": 3.0}
        metrics = model_metrics(rng, 0.85, external)
        if shortcuts:
            metrics["shortcuts"] = {"background": background(rng, set())}
        (folder / "models" / "ensemble").mkdir(parents=True)
        (folder / "models" / "ensemble" / "training.json").write_text(json.dumps(record))
        (folder / "metrics" / "ensemble.json").write_text(json.dumps(metrics))
        rows.append(comparison_row(record, metrics))
    for name in ("knn", "logreg") if baselines else ():
        metrics = {s: evaluate_predictions(np.arange(n) % 4, probabilities(rng, np.arange(n) % 4, 0.4), CLASS_NAMES)
                   for s, n in SIZES.items()}
        (folder / "metrics" / f"baseline_{name}.json").write_text(json.dumps({**metrics, "dataset_hash": "0" * 64}))
        rows.append(comparison_row({"model": f"baseline_{name}", "params": {"total": 0, "trainable": 0},
                                    "spec": {"name": name, "family": "baseline", "description": f"{name} on pixels"},
                                    "train_seconds": 0.5}, metrics))
    champion = champion or ("ensemble" if ensemble else "cnn_a")
    comparison_table(rows, champion).to_csv(folder / "comparison.csv", index=False)
    value = next(r["val_macro_f1"] for r in rows if r["model"] == champion)
    margin = margin if margin is not None else {
        "runner_up": "cnn_b", "metric": "val_macro_f1", "difference": 0.123, "low": 0.031, "high": 0.2,
        "n_boot": 1000, "level": 0.95, "distinguishable": True}
    (folder / "champion.json").write_text(json.dumps({
        "champion": champion, "metric": "val_macro_f1", "value": value, "why": f"{champion} has the best val_macro_f1.",
        "margin": margin, "source": "x", "path": "x"}))
    (folder / "data_report.json").write_text(json.dumps({
        "train_dir": "/data/Training", "class_names": CLASS_NAMES, "images_used": 160, "modes": {"RGB": 160},
        "skipped_count": 0, "skipped": [], "splits": {s: dict.fromkeys(CLASS_NAMES, n // 4) for s, n in SIZES.items()},
        "near_duplicates": {"max_hamming_distance": 6, "groups": 150, "images_in_groups_of_two_or_more": 12}}))
    (folder / "report" / "leakage" / "leakage.json").write_text(json.dumps({
        "max_distance": 6, "test_images": 40, "twins": 5, "twin_fraction": 0.125, "pairs": [], "closest_pairs": [],
        "random_split": {"twins": 9, "twin_fraction": 0.225, "test_images": 40}}))
    if shortcuts:
        write_shortcuts(folder, rng, shortcuts == "planted", external)
    return folder


class Tables(HTMLParser):
    """Every <table> of an HTML fragment as rows of cell texts."""

    def __init__(self, fragment: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.feed(fragment)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def section(page: str, key: str) -> str:
    return page.split(f'<section id="{key}">')[1].split("</section>")[0]


def records(table: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(table[0], row)) for row in table[1:]]


def interval(entry: dict) -> str:
    return f"{entry['value']:.3f}\u00a0[{entry['low']:.3f},\u00a0{entry['high']:.3f}]"


@pytest.fixture(scope="module")
def built_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("built") / "run")


@pytest.fixture
def full_run(built_run, tmp_path) -> Path:
    """A fresh copy of the run with everything (ensemble champion, baselines, two external sets)."""
    return Path(shutil.copytree(built_run, tmp_path / "run"))


def test_every_section_and_its_toc_entry_is_there_external_after_evaluation_shortcuts_after_leakage(full_run):
    page = build_report(full_run).read_text()
    keys = [key for key, _ in SECTIONS]
    assert keys.index("external") == keys.index("evaluation") + 1
    assert keys.index("shortcuts") == keys.index("leakage") + 1
    for key, title in SECTIONS:
        assert page.count(f'<section id="{key}"><h2>{title}</h2>') == 1, key
        assert f'<li><a href="#{key}">{title}</a></li>' in page, key
    assert page.count("<section") == len(SECTIONS)


def test_the_external_section_shows_the_metrics_files_numbers(full_run):
    page = build_report(full_run).read_text()
    external = section(page, "external")
    tables = Tables(external).tables
    assert len(tables) == len(EXTERNAL)  # one table per set, one row per model (the baselines have none)
    for (name, (n, share, present)), table in zip(EXTERNAL.items(), tables):
        assert f"<h3>{name}</h3>" in external
        rows = {row["model"]: row for row in records(table)}
        assert list(rows) == ["cnn_a", "cnn_b", "resnet50", "ensemble"]
        for model, row in rows.items():
            truth = json.loads((full_run / "metrics" / f"{model}.json").read_text())["external"][name]
            assert truth["accuracy"] != pytest.approx(json.loads((full_run / "metrics" / f"{model}.json")
                                                                 .read_text())["test"]["accuracy"])
            assert row["accuracy [95 %]"] == interval(truth["intervals"]["accuracy"])
            assert row["macro-F1 [95 %]"] == interval(truth["intervals"]["macro_f1"])
            assert row["recall glioma_tumor [95 %]"] == interval(truth["intervals"]["recall"]["glioma_tumor"])
            for cls in ("no_tumor", "pituitary_tumor"):
                assert row[f"recall {cls}"] == f"{truth['intervals']['recall'][cls]['value']:.3f}"
            assert row["near-copies (share)"] == f"{truth['twins']} ({truth['twin_fraction']:.0%})"
            assert truth["twins"] == round(share * n)
            twin, novel = truth["near_copies"]["twin"], truth["near_copies"]["novel"]
            assert row["near-copies: accuracy / macro-F1"] == (f"{twin['accuracy']:.3f} / {twin['macro_f1']:.3f} "
                                                               f"(n={twin['samples']})")
            assert row["novel images: accuracy / macro-F1"] == (f"{novel['accuracy']:.3f} / "
                                                                f"{novel['macro_f1']:.3f} (n={novel['samples']})")
        if 1 not in present:  # a class the set lacks is said to be absent, not scored 0
            assert {row["recall meningioma_tumor"] for row in rows.values()} == {"absent"}
    # only the set that is mostly near-copies is called optimistic
    hospital, mirror = external.split("<h3>mirror</h3>")
    assert "optimistic" not in hospital and "most of this set are near-copies" in mirror
    assert "external_hospital_confusion.png" not in page  # figures are embedded, never linked


def test_the_champions_external_confusion_figure_is_embedded(full_run):
    from brain_tumor import figures

    metrics = json.loads((full_run / "metrics" / "ensemble.json").read_text())
    out = full_run / "report" / "evaluation" / "ensemble"
    shown = figures.external_confusions("ensemble", metrics, CLASS_NAMES, out)
    assert sorted(p.name for p in shown.values()) == ["external_hospital_confusion.png",
                                                      "external_mirror_confusion.png"]
    external = section(build_report(full_run).read_text(), "external")
    assert external.count('<img src="data:image/png;base64,') == 2
    assert 'alt="external_mirror_confusion.png"' in external.split("<h3>mirror</h3>")[1]


@pytest.mark.parametrize("distinguishable, expected, absent", [
    (True, "the interval excludes 0, so this is a real difference", "not distinguishable"),
    (False, "the interval holds 0, so the two are not distinguishable", "a real difference")])
def test_the_margin_sentence_follows_champion_json(full_run, distinguishable, expected, absent):
    run = load_run(full_run)
    run["champion"]["margin"] = {"runner_up": "cnn_a", "metric": "val_macro_f1", "difference": 0.0417,
                                 "low": 0.0123 if distinguishable else -0.02, "high": 0.0789, "n_boot": 1000,
                                 "level": 0.95, "distinguishable": distinguishable}
    first = conclusion(run)[0]
    assert first.startswith(f"ensemble won on val_macro_f1 with {run['champion']['value']:.3f}, ahead of cnn_a")
    assert "margin is +0.042" in first and "+0.079" in first
    assert ("+0.012" if distinguishable else "-0.020") in first
    assert expected in first and absent not in first
    assert "standard error" not in " ".join(conclusion(run))


def test_a_single_model_has_no_margin(tmp_path):
    run = load_run(make_run(tmp_path / "run", ensemble=False, baselines=False, external=False))
    run["champion"]["margin"] = None
    run["table"] = run["table"][run["table"]["model"] == "cnn_a"]
    assert conclusion(run)[0] == "cnn_a was the only candidate model, so it is the champion by default."


def table(cnn: float, low: float, high: float, baseline: float, family: str = "custom_cnn") -> pd.DataFrame:
    return pd.DataFrame([
        {"model": "cnn_a", "family": family, "val_macro_f1": cnn, "val_macro_f1_low": low, "val_macro_f1_high": high},
        {"model": "cnn_b", "family": "custom_cnn", "val_macro_f1": cnn - 0.1, "val_macro_f1_low": low - 0.1,
         "val_macro_f1_high": high - 0.1},
        {"model": "baseline_knn", "family": "baseline", "val_macro_f1": baseline - 0.2, "val_macro_f1_low": 0.0,
         "val_macro_f1_high": 1.0},
        {"model": "baseline_logreg", "family": "baseline", "val_macro_f1": baseline, "val_macro_f1_low": 0.0,
         "val_macro_f1_high": 1.0}])


def test_do_the_cnns_beat_the_baselines():
    yes = baseline_sentence(table(0.85, 0.78, 0.9, 0.6))
    assert yes.startswith("Do the CNNs beat the baselines? Yes: the best CNN, cnn_a, has validation macro-F1 0.850 "
                          "(95 % interval 0.780–0.900); the best baseline, baseline_logreg, has 0.600; difference "
                          "+0.250; the CNN's interval low end (0.780) is above the baseline's value.")
    unclear = baseline_sentence(table(0.65, 0.55, 0.75, 0.6))
    assert "Not clearly" in unclear and "difference +0.050" in unclear and "(0.550) is not above" in unclear
    no = baseline_sentence(table(0.5, 0.4, 0.6, 0.6, family="ensemble"))
    assert no.startswith("Do the CNNs beat the baselines? No: the ensemble, cnn_a, has") and "-0.100" in no
    assert baseline_sentence(table(0.8, 0.7, 0.9, 0.6).iloc[:2]) is None  # no baseline: nothing to say


def test_the_conclusion_has_glioma_recall_baselines_external_and_transfer(full_run):
    run = load_run(full_run)
    lines = conclusion(run)
    held = run["metrics"]["ensemble"]["test"]
    glioma = held["intervals"]["recall"]["glioma_tumor"]
    assert any(line.startswith(f"Glioma recall (sensitivity) of ensemble on the test split: {glioma['value']:.3f} "
                               f"(95 % interval {glioma['low']:.3f}–{glioma['high']:.3f})") for line in lines)
    assert any(line.startswith("Do the CNNs beat the baselines?") for line in lines)
    external = run["metrics"]["ensemble"]["external"]
    for name, values in external.items():
        assert any(line.startswith(f"External set {name} ({values['samples']} images") and
                   f"accuracy {values['accuracy']:.3f}" in line for line in lines)
    transfer = next(line for line in lines if line.startswith("Custom CNNs vs transfer learning"))
    assert "resnet50 (no pretrained weights, frozen)" in transfer and "says nothing about what pretraining" in transfer
    limits = next(line for line in lines if line.startswith("Limits"))
    assert "no external validation" not in limits and "external validation on 2 sets (hospital, mirror" in limits


def test_a_run_without_ensemble_baselines_or_external_still_builds(tmp_path):
    folder = make_run(tmp_path / "run", ensemble=False, baselines=False, external=False)
    page = build_report(folder).read_text()
    assert page.count("<section") == len(SECTIONS)
    assert "No external folder was given" in section(page, "external") and "--external-dir" in section(page,
                                                                                                       "external")
    assert "Do the CNNs beat the baselines?" not in page and "<h3>Baselines</h3>" not in page
    assert "Ensemble members" not in page
    limits = next(line for line in conclusion(load_run(folder)) if line.startswith("Limits"))
    assert "no external validation" in limits


def test_training_shows_the_recipe_and_where_fine_tuning_starts(tmp_path):
    folder = make_run(tmp_path / "run", fine_tune=20)
    training = section(build_report(folder).read_text(), "training")
    recipes = {row["model"]: row for row in records(Tables(training).tables[0])}
    assert list(recipes) == ["cnn_a", "cnn_b", "resnet50"]  # the ensemble trains nothing of its own
    cnn = recipes["cnn_a"]
    assert (cnn["optimizer"], cnn["lr"], cnn["schedule"], cnn["augmentation"], cnn["label smoothing"]) == (
        "adamw (wd 0.0001)", "0.001", "cosine (+1 warm-up)", "light", "0.1")
    assert (cnn["epochs run / best"], cnn["monitor: best"], cnn["precision"], cnn["normalize"]) == (
        "4 / 3", "val_macro_f1: 0.5000", "bfloat16", "yes")
    assert (recipes["resnet50"]["weights"], recipes["resnet50"]["fine-tuned layers"]) == ("no pretrained weights",
                                                                                         "20")
    assert (cnn["weights"], recipes["resnet50"]["normalize"]) == ("–", "–")
    assert "from epoch 5 (2 epochs, marked on the curves); the kept epoch is in the fine-tune stage" in training
    assert "No training of its own: a soft vote of 0.60·cnn_a + 0.40·resnet50 (with mirror images)" in training


def test_evaluation_shows_intervals_glioma_first(full_run):
    evaluation = section(build_report(full_run).read_text(), "evaluation")
    metrics = json.loads((full_run / "metrics" / "cnn_b.json").read_text())
    part = evaluation.split("<h3>cnn_b</h3>")[1].split("<h3>")[0]
    glioma = metrics["test"]["intervals"]["recall"]["glioma_tumor"]
    assert f"Glioma recall of cnn_b on the test split: {glioma['value']:.3f}" in part
    rows = records(Tables(part).tables[0])
    assert [row["metric"] for row in rows][:3] == ["accuracy", "macro-F1", "recall glioma_tumor (sensitivity)"]
    assert rows[0]["test [95 % interval]"] == interval(metrics["test"]["intervals"]["accuracy"])
    assert rows[1]["validation [95 % interval]"] == interval(metrics["val"]["intervals"]["macro_f1"])
    assert rows[2]["test [95 % interval]"] == interval(glioma)
    baselines = evaluation.split("<h3>Baselines</h3>")[1]
    knn = json.loads((full_run / "metrics" / "baseline_knn.json").read_text())
    assert interval(knn["val"]["intervals"]["macro_f1"]) in baselines


def test_the_model_card_of_an_ensemble_champion(full_run):
    page = build_report(full_run).read_text()
    card = {row[0]: row[1] for row in Tables(section(page, "model-card")).tables[0]}
    assert card["Ensemble members"].startswith("0.60·cnn_a + 0.40·resnet50 (with mirror images): a soft vote")
    assert card["Training recipe"].startswith("All members: adamw (weight decay 0.0001), learning rate 0.001")
    assert card["Batch size"] == "cnn_a 32, resnet50 32" and card["Precision"].startswith("bfloat16")
    assert card["Backbone (resnet50)"] == "ResNet50 with no pretrained weights; frozen."
    assert "standardised per image" in card["Input"] and "not cropped" in card["Input"]
    assert card["External validation"].startswith("hospital (30 images, 20% near-copies")
    assert "no external validation" not in card["Caveats"].lower()


def test_comparison_lists_the_baselines_and_the_ensemble(full_run):
    comparison = section(build_report(full_run).read_text(), "comparison")
    models = [row["model"] for row in records(Tables(comparison).tables[0])]
    assert models == ["cnn_a", "cnn_b", "resnet50", "ensemble", "baseline_knn", "baseline_logreg"]
    assert "Do the CNNs beat the baselines?" in comparison


def test_the_shortcut_section_shows_the_audit_files_numbers(full_run):
    page = build_report(full_run).read_text()
    part = section(page, "shortcuts")
    assert '<li><a href="#shortcuts">Shortcut audit</a></li>' in page
    folder = full_run / "report" / "shortcuts"
    baseline = json.loads((folder / "style_baseline.json").read_text())
    medians, scores, importances, background, *external = Tables(part).tables
    truth = pd.read_csv(folder / "style_medians.csv")
    assert [row["class"] for row in records(medians)] == CLASS_NAMES
    no_tumor = records(medians)[2]
    assert float(no_tumor["width"]) == truth.loc[2, "width"] < float(records(medians)[0]["width"]) == 512
    rows = {(row["classifier"], row["features"]): row for row in records(scores)}
    expected = [(name.replace("_", " "), "all style features", values) for name, values in baseline["models"].items()]
    expected.append(("random forest", "width, height, aspect, bands", baseline["geometry"]))
    for name, features, values in expected:
        assert rows[name, features]["accuracy [95 %]"] == interval(values["accuracy"])
        assert rows[name, features]["macro-F1 [95 %]"] == interval(values["macro_f1"])
    assert rows["always glioma_tumor (chance)", "none"]["accuracy [95 %]"] == f"{baseline['majority_rate']:.3f}"
    assert [row["feature"] for row in records(importances)] == [e["feature"] for e in baseline["importances"]]
    assert baseline["verdict"]["flagged"]
    assert f"<p class='verdict'>{baseline['verdict']['sentence']}</p>" in part
    cells = {row["model"]: row for row in records(background)}
    assert list(cells) == ["cnn_a", "cnn_b", "resnet50", "ensemble"]
    shares = json.loads((full_run / "metrics" / "cnn_b.json").read_text())["shortcuts"]["background"]["per_class"]
    assert cells["cnn_b"]["glioma_tumor"] == f"{shares['glioma_tumor']['mean']:.2f} ⚠ (n=10)"
    assert "⚠" not in cells["cnn_a"]["glioma_tumor"] + cells["cnn_b"]["meningioma_tumor"]
    assert "cnn_b: decisions rest mostly on background or borders for glioma_tumor." in part
    assert "cnn_a: decisions rest" not in part
    assert len(external) == len(EXTERNAL)  # one style table per external set
    shifts = json.loads((folder / "external_style.json").read_text())
    hospital = {row["feature"]: row for row in records(external[0])}
    assert hospital["width"]["no_tumor: training / external"].endswith("⚠")  # planted training no_tumor is smaller
    assert shifts["hospital"]["sentence"] in html.unescape(part) and shifts["hospital"]["shifts"]
    assert "meningioma_tumor: training / external" not in records(external[1])[0]  # mirror lacks the class


def test_a_flagged_audit_is_a_limit_in_the_conclusion_and_the_model_card(full_run):
    run = load_run(full_run)
    sentence = run["shortcuts"]["baseline"]["verdict"]["sentence"]
    limit = next(line for line in conclusion(run) if line.startswith("Limit, shortcut audit: "))
    assert sentence in limit and "Grad-CAM" not in limit  # the ensemble champion's Grad-CAM stays on the head
    card = dict(model_card(run))
    assert card["Shortcut risk"].startswith(sentence)
    run["champion"]["champion"] = "cnn_b"
    limit = next(line for line in conclusion(run) if line.startswith("Limit, shortcut audit: "))
    assert limit.endswith("Grad-CAM of cnn_b rests mostly on background or borders for glioma_tumor (more than half "
                          "of the heatmap outside the head).")


def test_one_shared_style_is_no_limit(tmp_path):
    run = load_run(make_run(tmp_path / "run", shortcuts="none", external=False))
    verdict = run["shortcuts"]["baseline"]["verdict"]
    assert not verdict["flagged"] and verdict["sentence"].startswith("The classes are not clearly separable")
    assert not any(line.startswith("Limit, shortcut audit") for line in conclusion(run))
    assert "Shortcut risk" not in dict(model_card(run))
    part = section(build_report(run["run_dir"]).read_text(), "shortcuts")
    assert verdict["sentence"] in part and "decisions rest mostly on background or borders for" not in part


def test_a_run_without_the_audit_says_it_is_not_available(tmp_path):
    folder = make_run(tmp_path / "run", shortcuts=None, external=False)
    page = build_report(folder).read_text()
    assert page.count("<section") == len(SECTIONS)
    part = section(page, "shortcuts")
    assert "Style audit not available" in part and "Not available: the models were evaluated without it." in part
    assert "<table" not in part
    assert not any(line.startswith("Limit, shortcut audit") for line in conclusion(load_run(folder)))


def test_the_page_escapes_what_the_run_folder_holds(tmp_path):
    """A class name and a champion's reason from the run folder's files are text on the page, never markup."""
    folder = make_run(tmp_path / "run", external=False)
    hostile = "<script>alert(1)</script>"
    for path in folder.rglob("*"):
        if path.suffix in (".json", ".csv"):
            path.write_text(path.read_text().replace("pituitary_tumor", hostile))
    decision = json.loads((folder / "champion.json").read_text())
    (folder / "champion.json").write_text(json.dumps({**decision, "why": f"<b onmouseover=x>{hostile}</b>"}))
    page = build_report(folder).read_text()
    assert "<script" not in page and "<b onmouseover" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(page, "exploration")  # the class's row of counts
    assert "&lt;b onmouseover=x&gt;" in section(page, "comparison")


def test_the_templates_ship_with_the_package():
    """Every template file is matched by pyproject's package-data, so an installed package (the agents' image) can
    render the report."""
    from fnmatch import fnmatch

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["brain_tumor"]
    templates = [p.relative_to(root / "brain_tumor").as_posix() for p in (root / "brain_tumor" / "templates").rglob("*")
                 if p.is_file()]
    assert "templates/base.html" in templates and len(templates) == len(SECTIONS) + 3  # base, macros, css
    assert [t for t in templates if not any(fnmatch(t, pattern) for pattern in patterns)] == []


def write_selection(folder: Path, rng, decision: str) -> dict:
    """report/ensemble/selection.json as the ensemble step writes it: from the core's choice on validation
    probabilities ("no_gain": cnn_a right on every image, no mix can beat it; "built": two complementary halves)."""
    from brain_tumor.ensemble import choose
    from brain_tumor.figures import ensemble_selection

    labels = np.arange(40) % 4
    if decision == "no_gain":
        plain = {"cnn_a": probabilities(rng, labels, 1.0), "cnn_b": probabilities(rng, labels, 0.5),
                 "resnet50": probabilities(rng, labels, 0.6)}
    else:
        half = labels < 2
        plain = {"cnn_a": probabilities(rng, np.where(half, labels, 0), 1.0),
                 "cnn_b": probabilities(rng, np.where(half, 3, labels), 1.0),
                 "resnet50": probabilities(rng, labels, 0.3)}
    outcome = choose(plain, plain, labels)
    assert outcome["decision"] == decision
    ensemble_selection(folder).parent.mkdir(parents=True, exist_ok=True)
    ensemble_selection(folder).write_text(json.dumps({**outcome, "sentence": "as the step printed it"}))
    return outcome


def test_no_ensemble_is_an_outcome_the_report_shows(tmp_path):
    folder = make_run(tmp_path / "run", ensemble=False, external=False)
    outcome = write_selection(folder, np.random.default_rng(3), "no_gain")
    page = build_report(folder).read_text()
    part = section(page, "ensemble")
    single, mix = outcome["best_single"], outcome["best_mix"]
    assert single == {"model": "cnn_a", "val_macro_f1": 1.0} and mix["val_macro_f1"] < 1
    sentence = ("No ensemble: on validation no mix beats cnn_a alone; the best mix tried, "
                + " + ".join(f"{w:.2f}·{m}" for m, w in mix["members"].items())
                + f", has validation macro-F1 {mix['val_macro_f1']:.3f} against 1.000 for cnn_a alone "
                  f"({mix['val_macro_f1'] - 1:+.3f}).")
    assert f"<p class='verdict'>{sentence}</p>" in part
    candidates, search = Tables(part).tables
    assert records(candidates) == [{"model": c["model"], "validation macro-F1": f"{c['val_macro_f1']:.3f}",
                                    "with mirror images": f"{c['val_macro_f1_mirror']:.3f}"}
                                   for c in outcome["candidates"]]
    rounds = records(search)
    assert [r["round"] for r in rounds] == ["1", "2", "1", "2"]  # as they are, then with mirror images
    assert rounds[0]["starts from"] == "–" and rounds[0]["+ cnn_a"] == "1.000 ✓"
    assert rounds[1]["starts from"] == "1.00·cnn_a" and "✓" not in "".join(rounds[1].values())
    steps = {row["step"]: row["outcome"] for row in records(Tables(section(page, "overview")).tables[0])}
    assert steps["ensemble"] == sentence
    assert list(steps) == ["register_dataset", "class_weights", "train_cnn_a", "train_cnn_b", "train_resnet50",
                           "evaluate", "ensemble", "baselines", "select_champion"]


def test_a_built_ensemble_shows_its_gain_over_the_best_single_model(tmp_path):
    folder = make_run(tmp_path / "run", external=False)
    outcome = write_selection(folder, np.random.default_rng(4), "built")
    part = section(build_report(folder).read_text(), "ensemble")
    chosen, single = outcome["chosen"], outcome["best_single"]
    assert (f"Ensemble built: {' + '.join(f'{w:.2f}·{m}' for m, w in chosen['members'].items())}, validation "
            f"macro-F1 {chosen['val_macro_f1']:.3f} against {single['val_macro_f1']:.3f} for the best single model, "
            f"{single['model']} ({chosen['val_macro_f1'] - single['val_macro_f1']:+.3f})") in part
    assert chosen["val_macro_f1"] > single["val_macro_f1"] and "its validation score is optimistic" in part


@pytest.mark.parametrize("decision, sentence", [("off", "No ensemble: turned off (ensemble=false)"),
                                                ("too_few", "No ensemble: fewer than two trained models")])
def test_an_ensemble_step_with_nothing_to_try_says_why(tmp_path, decision, sentence):
    from brain_tumor.figures import ensemble_selection

    folder = make_run(tmp_path / "run", ensemble=False, baselines=False, external=False)
    ensemble_selection(folder).parent.mkdir(parents=True)
    ensemble_selection(folder).write_text(json.dumps({"decision": decision, "sentence": sentence,
                                                      "candidates": [{"model": "cnn_a"}]}))
    part = section(build_report(folder).read_text(), "ensemble")
    assert f"<p class='verdict'>{sentence}; trained models: cnn_a.</p>" in part and "<table" not in part
