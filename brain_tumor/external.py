"""External validation: labelled folders from elsewhere (another hospital, another public set), evaluated by every
model. Public "external" sets overlap with this one more than people think, so each external image is matched to its
nearest Training image by perceptual hash, and the metrics are given apart for near-copies and novel images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import Layout, find_layout, scan
from .errors import UserError
from .evaluation import evaluate_predictions
from .leakage import nearest, twin_metrics
from .split import DEFAULT_MAX_DISTANCE


@dataclass
class ExternalSet:
    name: str
    folder: str
    pixels: np.ndarray
    labels: np.ndarray
    files: list[str]
    nearest_distances: np.ndarray  # to the nearest image of the training folder (every split)
    nearest_files: list[str]
    skipped: list
    style: pd.DataFrame  # each image's acquisition style (images.STYLE_FEATURES), for the shortcut audit

    @property
    def is_twin(self) -> np.ndarray:
        return self.nearest_distances <= DEFAULT_MAX_DISTANCE


def folders(external_dir: str) -> list[Path]:
    """The comma-separated folders of the `external_dir` parameter (empty: none)."""
    found = [Path(p.strip()) for p in external_dir.split(",") if p.strip()]
    for path in found:
        if not path.is_dir():
            raise UserError(f"External folder not found: {path}. Give labelled folders of class folders "
                            f"(comma-separated), e.g. --external-dir /data/hospital_b/Testing.")
    return found


def load_external(external_dir: str, class_names: list[str], image_size: int, crop: bool,
                  training_phashes: list[str], training_files: list[str]) -> list[ExternalSet]:
    """Decode each external folder as the models' inputs are decoded; classes must be among the training classes
    (a subset is fine: a clear error names any other)."""
    sets = []
    for folder in folders(external_dir):
        layout = find_layout(folder)
        source = layout.test_dir or layout.train_dir  # ROOT/Training + ROOT/Testing: the Testing folder
        scanned = scan(Layout(source), image_size, class_names=class_names, progress=False, crop=crop)
        distances, indices = nearest(scanned.phashes, training_phashes)
        name = folder.name if folder.name not in {s.name for s in sets} else f"{folder.parent.name}/{folder.name}"
        sets.append(ExternalSet(name, str(folder), scanned.pixels, scanned.labels, scanned.files, distances,
                                [training_files[i] for i in indices], scanned.skipped, scanned.style))
    return sets


def external_metrics(external: ExternalSet, probabilities: np.ndarray, class_names: list[str]) -> dict:
    """Metrics on one external set (macro averages over the classes it holds), their 95 % intervals, and the
    same metrics on its near-copies of Training images and on its novel images."""
    present = sorted(set(int(label) for label in external.labels))
    metrics = evaluate_predictions(external.labels, probabilities, class_names, labels=present)
    metrics.update(
        folder=external.folder, classes=[class_names[i] for i in present],
        twins=int(external.is_twin.sum()), twin_fraction=float(external.is_twin.mean()),
        near_copies=twin_metrics(external.labels, probabilities, external.is_twin, class_names),
        skipped=[{"path": s.path, "reason": s.reason} for s in external.skipped])
    return metrics
