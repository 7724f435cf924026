"""Step: scan and validate the data, hash every file, carve the splits, record the dataset (ClearML Dataset)."""

from __future__ import annotations

from pathlib import Path

from brain_tumor.data import dataset_hash, find_layout
from brain_tumor.experiment import prepare_data, split_counts

from .tracking import PROJECT, current_task, report_table, upload_artifact


def register_dataset(data: str, run_dir: str, image_size: int, val_fraction: float, test_fraction: float,
                     seed: int, train_dir: str = "", test_dir: str = "") -> dict:
    layout = find_layout(data or None, train_dir or None, test_dir or None)
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(layout, image_size, val_fraction, test_fraction, seed, out)
    digest = dataset_hash(prepared.scanned)
    counts = split_counts(prepared)

    dataset_id = None
    task = current_task()
    if task is not None:
        from clearml import Dataset

        # This step's task becomes the dataset version: the files with their hashes, the manifest beside them.
        dataset = Dataset.create(dataset_project=PROJECT, dataset_name="brain-tumor-mri", use_current_task=True,
                                 description=f"content hash {digest}")
        dataset.add_files(layout.train_dir, dataset_path="Training", verbose=False)
        if layout.test_dir is not None:
            dataset.add_files(layout.test_dir, dataset_path="Testing", verbose=False)
        dataset_id = dataset.id
        task.set_parameter("dataset/hash", digest)
        report_table("split counts", [["split", *prepared.scanned.class_names]]
                     + [[split, *row.values()] for split, row in counts.items()])
        upload_artifact("manifest", out / "manifest.csv")
        upload_artifact("data_report", out / "data_report.json")
    return {"manifest": str(out / "manifest.csv"), "data_report": str(out / "data_report.json"),
            "dataset_hash": digest, "dataset_id": dataset_id, "class_names": prepared.scanned.class_names,
            "counts": counts, "skipped": len(prepared.scanned.skipped)}
