"""Step: scan and validate the data, hash every file, carve the splits, record the dataset (ClearML Dataset)."""

from __future__ import annotations

from pathlib import Path

from brain_tumor import figures
from brain_tumor.data import dataset_hash, find_layout
from brain_tumor.experiment import prepare_data, split_counts

from . import registry
from .tracking import current_task, report_images, report_table, upload_artifact


def register_dataset(data: str, train_dir: str, test_dir: str, dataset_id: str, run_dir: str, image_size: int,
                     val_fraction: float, test_fraction: float, seed: int, project: str) -> dict:
    if dataset_id and not (data or train_dir):  # a version already on the server (what `launch` passes)
        data = str(registry.dataset_local_copy(dataset_id))
    layout = find_layout(data or None, train_dir or None, test_dir or None)
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(layout, image_size, val_fraction, test_fraction, seed, out)
    digest = dataset_hash(prepared.scanned)
    counts = split_counts(prepared)
    report = figures.report_dir(out)
    shown = figures.exploration(prepared, counts, report / "exploration", seed)
    leakage, leakage_figures = figures.leakage(prepared, report / "leakage", seed)
    print(f"Leakage audit: {leakage['twins']} of {leakage['test_images']} test images have a near-duplicate in "
          f"train/validation (a random split would give {leakage['random_split']['twins']})")
    style, style_figures = figures.shortcuts(prepared, report / "shortcuts", seed)
    if style is not None:
        print(f"Shortcut audit: {style['baseline']['verdict']['sentence']}")

    offline_record = None  # an offline dataset record cannot be fetched by other steps: kept apart from dataset_id
    task = current_task()
    if task is not None and not dataset_id:  # with an id, the version on the server is used as it is
        if task.is_offline():
            from clearml import Dataset

            # Offline, this step's task becomes the dataset record: the files and their hashes.
            dataset = Dataset.create(dataset_project=project, dataset_name=registry.DATASET_NAME,
                                     use_current_task=True, description=f"content hash {digest}")
            dataset.add_files(layout.train_dir, dataset_path="Training", verbose=False)
            if layout.test_dir is not None:
                dataset.add_files(layout.test_dir, dataset_path="Testing", verbose=False)
            offline_record = dataset.id
        else:
            dataset_id = registry.register_version(layout, digest, project)
    if task is not None:
        task.set_parameter("dataset/hash", digest)
        report_table("split counts", [["split", *prepared.scanned.class_names]]
                     + [[split, *row.values()] for split, row in counts.items()])
        upload_artifact("split manifest", out / "manifest.csv")  # never named like a result (executor.py)
        upload_artifact("data report", out / "data_report.json")
        upload_artifact("leakage audit", report / "leakage" / "leakage.json")
        if style is not None:
            report_table("style medians per class", style["medians"].reset_index())
            upload_artifact("style baseline", report / "shortcuts" / figures.STYLE_BASELINE)
        report_images({**shown, **leakage_figures, **style_figures})
    return {"manifest": str(out / "manifest.csv"), "data_report": str(out / "data_report.json"),
            "dataset_hash": digest, "dataset_id": dataset_id or None, "offline_record": offline_record,
            "class_names": prepared.scanned.class_names,
            "counts": counts, "skipped": len(prepared.scanned.skipped)}
