"""Step: choose the champion on a validation metric (never a test metric), write the comparison table."""

from __future__ import annotations

import json
from pathlib import Path

from brain_tumor import figures, files
from brain_tumor.promotion import CANDIDATE, OFFLINE
from brain_tumor.report import build_report, missing_inputs
from brain_tumor.selection import CHAMPION_METRICS, choose_champion, comparison_table, to_markdown

from . import registry
from .promotion import promotion
from .registry import CHAMPION_TAG, champion_tag_changes, find_models
from .tracking import current_task, report_html, report_images, report_table, upload_artifact


def margin(run_dir: Path, rows: list[dict], champion: str, metric: str) -> dict | None:
    """The champion's validation macro-F1 (or accuracy) minus the runner-up's, with a 95 % paired-bootstrap
    interval over the same validation images: an interval that holds 0 means the two are not distinguishable."""
    import pandas as pd

    from brain_tumor.intervals import paired_difference

    others = [r for r in rows if r["model"] != champion]
    if not others:
        return None
    column, higher_is_better = CHAMPION_METRICS[metric]
    runner_up = sorted(others, key=lambda r: -r[column] if higher_is_better else r[column])[0]["model"]
    paths = {m: run_dir / "metrics" / f"{m}_predictions.csv" for m in (champion, runner_up)}
    if not all(path.is_file() for path in paths.values()):
        return None  # no predictions to compare (models evaluated elsewhere, without their files)
    frames = {m: pd.read_csv(path) for m, path in paths.items()}
    val = {m: f[f["split"] == "val"].sort_values("file") for m, f in frames.items()}
    names = sorted(set(val[champion]["true"]) | set(val[champion]["predicted"]) | set(val[runner_up]["predicted"]))
    index = {n: i for i, n in enumerate(names)}
    labels = val[champion]["true"].map(index).to_numpy()
    score = "accuracy" if metric == "val_accuracy" else "macro_f1"
    difference = paired_difference(labels, val[champion]["predicted"].map(index).to_numpy(),
                                   val[runner_up]["predicted"].map(index).to_numpy(), names, score)
    return {"runner_up": runner_up, "metric": f"val_{score}", **difference,
            "distinguishable": difference["low"] > 0 or difference["high"] < 0}


def select_champion(rows: list[dict], model_refs: dict, baseline_rows: list[dict], run_dir: str,
                    metric: str, project: str, promote: str, dataset_hash: str | None = None,
                    dataset_id: str | None = None, val_fraction: float | None = None,
                    test_fraction: float | None = None, seed: int | None = None) -> dict:
    """The champion among the models (and the ensemble) by a validation metric; the baselines are in the table,
    never candidates. On a server the project's champion tag moves to it when `promote` says so
    (steps/promotion.py), else it is published as a candidate; the dataset arguments fetch this run's images for that
    comparison where the run folder is not shared."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)  # on a fresh agent only the upstream steps' restored files are here
    champion, why = choose_champion(rows, metric)
    gap = margin(out, rows, champion, metric)
    if gap is not None:
        why += (f" Its margin over {gap['runner_up']} in {gap['metric']} is {gap['difference']:+.3f} (95 % interval "
                f"{gap['low']:+.3f} to {gap['high']:+.3f}): "
                + ("a real difference." if gap["distinguishable"] else "within noise, not a clear winner."))
    table = comparison_table(rows + baseline_rows, champion)
    table.to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(to_markdown(table))
    files.copy(registry.resolve_model(model_refs[champion]), out / "champion.keras")
    column = CHAMPION_METRICS[metric][0]
    value = next(r[column] for r in rows if r["model"] == champion)
    decision = {"champion": champion, "metric": metric, "value": value, "why": why, "margin": gap,
                "source": model_refs[champion], "path": str(out / "champion.keras")}
    task = current_task()
    registered = task is not None and not task.is_offline() and not Path(model_refs[champion]).is_file()
    promoted = OFFLINE if not registered else promotion(
        promote, model_refs[champion], out / "champion.keras", out, project,
        {"dataset_hash": dataset_hash, "dataset_id": dataset_id, "val_fraction": val_fraction,
         "test_fraction": test_fraction, "seed": seed})
    files.write_text(out / "champion.json", json.dumps({**decision, "promotion": promoted}, indent=2))
    print(f"Champion: {why}")
    if registered:
        print(f"Promotion ({promote}): {promoted['why']}")
    histories = {row["model"]: json.loads(path.read_text()) for row in rows
                 if (path := out / "models" / row["model"] / "history.json").is_file()}
    shown = figures.comparison(rows + baseline_rows, histories, champion, figures.report_dir(out) / "comparison")
    report_images(shown)
    missing, report = missing_inputs(out), None
    if missing:  # earlier steps ran on other machines: their figures are in ClearML, not in this folder
        print(f"No report.html here: {', '.join(missing)} not in {out} (no shared run folder).")
    else:
        report = build_report(out)
        print(f"Report: {report}")
        upload_artifact("report", report)
        report_html("report", report)  # shown in the web UI (Debug Samples), not only downloadable
    if task is not None:
        report_table("comparison", table)
        task.set_parameter("champion/model", champion)
        if not task.is_offline() and task.parent:  # a pipeline step: the comparison and report on the pipeline too
            from clearml import Task

            pipeline = Task.get_task(task_id=task.parent)
            pipeline.get_logger().report_table("comparison", "table", 0, table_plot=table)
            for title, path in shown.items():
                pipeline.get_logger().report_image(title, "comparison", iteration=0, local_path=str(path))
            if report is not None:
                pipeline.upload_artifact("report", artifact_object=report)
                report_html("report", report, task=pipeline)
        if registered:
            if promoted["crown"]:
                crown(model_refs[champion], project)
            else:
                mark_candidate(model_refs[champion])
    return decision


def crown(model_id: str, project: str) -> None:
    """Publish the champion in the model registry; it alone in the project carries the champion tag."""
    from clearml import Model

    tagged = find_models(CHAMPION_TAG, project=project)
    changes = champion_tag_changes(model_id, tagged)
    for old in changes["remove"]:
        model = Model(old)
        model.tags = [t for t in model.tags if t != CHAMPION_TAG]
    champion = Model(model_id)
    if changes["add"] or CANDIDATE in champion.tags:
        champion.tags = [*(t for t in champion.tags if t != CANDIDATE), *([CHAMPION_TAG] if changes["add"] else [])]
    champion.publish()


def mark_candidate(model_id: str) -> None:
    """Publish a champion that was not crowned as a candidate: registered, tagged, and the tag stays where it is."""
    from clearml import Model

    model = Model(model_id)
    if CANDIDATE not in model.tags and CHAMPION_TAG not in model.tags:  # a holder re-selected keeps its tag
        model.tags = [*model.tags, CANDIDATE]
    model.publish()
