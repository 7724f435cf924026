"""Finding, validating and decoding a folder of labelled MRI images.

Layouts accepted (classes are the sorted sub-folder names):

    ROOT/Training/<class>/*  [+ ROOT/Testing/<class>/*]     --data ROOT
    ROOT/<class>/*                                          --data ROOT (a training folder on its own)
    --train-dir DIR [--test-dir DIR]                        each DIR/<class>/*

Each image is decoded exactly once, here; files that are not whole images are skipped and counted, with their paths.
The user's folder is only read, never written.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .errors import UserError
from .images import DECODE_ERRORS, STYLE_FEATURES, decode_image
from .pixels import PixelWriter

EXPECTED_LAYOUT = (
    "Expected layout: ROOT/Training/<class>/<images> with an optional ROOT/Testing/<class>/<images> "
    "(or ROOT/<class>/<images>, or --train-dir DIR / --test-dir DIR, each holding one folder per class), "
    "e.g. Training/glioma_tumor/img1.jpg."
)


@dataclass(frozen=True)
class Layout:
    train_dir: Path
    test_dir: Path | None = None


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class ScannedData:
    """Everything later stages need, in memory: one row per readable image, in sorted path order."""

    class_names: list[str]
    image_size: int
    files: list[str]
    labels: np.ndarray  # int, index into class_names
    sources: list[str]  # "train" (from the training folder) or "test" (from the test folder)
    phashes: list[str]
    sha256s: list[str]
    pixels: np.ndarray  # (n, image_size, image_size, 3) uint8, in memory or a pixels.PixelFile
    skipped: list[Skipped] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)
    crop: bool = False  # pixels cropped to the head (images.head_box) before resizing
    style: pd.DataFrame | None = None  # one row per image, columns images.STYLE_FEATURES; None when not decoded here


def _find_child(folder: Path, names: tuple[str, ...]) -> Path | None:
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.lower() in names:
            return child
    return None


def find_layout(data: str | Path | None = None, train_dir: str | Path | None = None,
                test_dir: str | Path | None = None) -> Layout:
    """Resolve the user's arguments to a training folder and an optional test folder, or stop with a clear error."""
    if train_dir is not None:
        train, test = Path(train_dir), Path(test_dir) if test_dir is not None else None
        if not train.is_dir():
            raise UserError(f"Training folder not found: {train}. {EXPECTED_LAYOUT}")
        if test is not None and not test.is_dir():
            raise UserError(f"Test folder not found: {test}. {EXPECTED_LAYOUT}")
        return Layout(train, test)
    if data is None:
        raise UserError("No data given: pass --data ROOT or --train-dir DIR. " + EXPECTED_LAYOUT)
    root = Path(data)
    if not root.is_dir():
        raise UserError(f"Data folder not found: {root}. {EXPECTED_LAYOUT}")
    training = _find_child(root, ("training", "train"))
    testing = _find_child(root, ("testing", "test"))
    if test_dir is not None:
        testing = Path(test_dir)
        if not testing.is_dir():
            raise UserError(f"Test folder not found: {testing}. {EXPECTED_LAYOUT}")
    if training is not None:
        return Layout(training, testing)
    if testing is not None:
        raise UserError(f"Missing Training folder in {root}: found {testing.name}/ but no Training/. {EXPECTED_LAYOUT}")
    subfolders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if subfolders and any(f.is_file() for p in subfolders for f in p.rglob("*")):
        return Layout(root, None)
    raise UserError(f"Unrecognised layout in {root}: no Training/ folder and no class folders with files. "
                    + EXPECTED_LAYOUT)


def list_class_files(folder: Path) -> tuple[dict[str, list[Path]], list[Skipped]]:
    """Files per class folder (recursively, sorted), and the stray files that sit outside any class folder."""
    classes: dict[str, list[Path]] = {}
    stray: list[Skipped] = []
    for child in sorted(folder.iterdir()):
        if child.is_dir():
            if child.name.startswith("."):
                continue
            files = sorted(p for p in child.rglob("*") if p.is_file())
            if not files:
                raise UserError(f"Empty class folder: {child} holds no files. Remove it or add its images. "
                                + EXPECTED_LAYOUT)
            classes[child.name] = files
        elif child.is_file():
            stray.append(Skipped(str(child), "not inside a class folder"))
    if len(classes) < 2:
        found = ", ".join(classes) or "none"
        raise UserError(f"Fewer than two classes in {folder} (found: {found}); a classifier needs at least two "
                        f"class folders. " + EXPECTED_LAYOUT)
    return classes, stray


def decode_or_skip(path: Path, image_size: int, crop: bool = False):
    if path.name.startswith("."):
        return Skipped(str(path), "hidden file")
    try:
        return decode_image(path, image_size, crop)
    except DECODE_ERRORS as error:
        return Skipped(str(path), f"not a readable image ({type(error).__name__}: {error})")


def _class_index(classes: list[str], class_names: list[str], folder: Path, role: str) -> None:
    unknown = sorted(set(classes) - set(class_names))
    if unknown:
        raise UserError(f"{role} classes absent from training: {', '.join(unknown)} (in {folder}); "
                        f"training classes are: {', '.join(class_names)}. Rename or remove those folders.")


def scan(layout: Layout, image_size: int, class_names: list[str] | None = None,
         files: list[tuple[str, str]] | None = None, workers: int | None = None, progress: bool = True,
         crop: bool = False, pixels_to: Path | None = None) -> ScannedData:
    """Validate the layout, then decode every file once (in threads, with a progress bar); `crop`: each image cropped
    to the head first (`images.head_box`).

    `class_names` fixes the label order (a saved model's classes) instead of the training folder's sorted names;
    `files`, as (path, class) pairs, replaces the folder listing (a manifest's rows). `pixels_to`: write the decoded
    pixels to this pixel file as they come (`pixels.py`), so that memory does not grow with the number of images.
    """
    skipped: list[Skipped] = []
    if files is not None:
        _class_index([c for _, c in files], class_names, layout.train_dir, "Manifest")
        jobs = [(Path(path), class_names.index(c), "test") for path, c in files]
    else:
        train_classes, skipped = list_class_files(layout.train_dir)
        if class_names is None:
            class_names = sorted(train_classes)
        _class_index(list(train_classes), class_names, layout.train_dir, "Evaluation")
        jobs = [(p, class_names.index(c), "train") for c in sorted(train_classes) for p in train_classes[c]]
        if layout.test_dir is not None:
            test_classes, test_stray = list_class_files(layout.test_dir)
            _class_index(list(test_classes), class_names, layout.test_dir, "Test")
            skipped += test_stray
            jobs += [(p, class_names.index(c), "test") for c in sorted(test_classes) for p in test_classes[c]]

    workers = workers or min(8, os.cpu_count() or 1)
    writer = PixelWriter(pixels_to, (image_size, image_size, 3)) if pixels_to is not None else None
    kept, in_memory = [], []  # kept: (job, phash, sha256, mode), without the pixels
    style = np.empty((len(jobs), len(STYLE_FEATURES)))  # numbers only, a row per kept image: flat memory
    try:
        with ThreadPoolExecutor(workers) as pool:
            decoded = pool.map(lambda job: decode_or_skip(job[0], image_size, crop), jobs)
            for job, result in zip(jobs, tqdm(decoded, total=len(jobs), desc=f"Decoding {len(jobs)} images",
                                              unit="img", disable=not progress)):
                if isinstance(result, Skipped):
                    skipped.append(result)
                    continue
                style[len(kept)] = [result.style[name] for name in STYLE_FEATURES]
                kept.append((job, result.phash, result.sha256, result.mode))
                if writer:
                    writer.write(result.pixels)
                else:
                    in_memory.append(result.pixels)
        kept_keys = {(job[1], job[2]) for job, *_ in kept}
        for label, source in sorted({(job[1], job[2]) for job in jobs} - kept_keys):
            paths = [str(job[0]) for job in jobs if job[1] == label and job[2] == source]
            reasons = [s for s in skipped if s.path in paths]
            raise UserError(f"No readable images for class {class_names[label]} in {Path(paths[0]).parent}: all "
                            f"{len(paths)} files were skipped (e.g. {reasons[0].path}: {reasons[0].reason}). "
                            f"Add valid JPEG/PNG images there.")
    except BaseException:
        if writer:
            writer.abandon()
        raise

    modes: dict[str, int] = {}
    for *_, mode in kept:
        modes[mode] = modes.get(mode, 0) + 1
    files_kept, sha256s = [str(job[0]) for job, *_ in kept], [sha for _, _, sha, _ in kept]
    return ScannedData(
        class_names=class_names,
        image_size=image_size,
        files=files_kept,
        labels=np.array([job[1] for job, *_ in kept], dtype=np.int64),
        sources=[job[2] for job, *_ in kept],
        phashes=[phash for _, phash, _, _ in kept],
        sha256s=sha256s,
        pixels=writer.finish(rows=rows_digest(files_kept, sha256s), crop=crop) if writer else np.stack(in_memory),
        skipped=skipped,
        modes=modes,
        crop=crop,
        style=pd.DataFrame(style[:len(kept)], columns=list(STYLE_FEATURES)),
    )


def rows_digest(files: list[str], sha256s: list[str]) -> str:
    """Which images, in which order: what a pixel file must match to stand for a manifest's rows."""
    return hashlib.sha256("\n".join(f"{f}\t{s}" for f, s in zip(files, sha256s)).encode()).hexdigest()


def data_report(scanned: ScannedData, layout: Layout) -> dict:
    """Counts per source and class, the skipped files with their reasons, and the image modes seen."""
    counts = {source: {name: int(np.sum((scanned.labels == i) & (np.array(scanned.sources) == source)))
                       for i, name in enumerate(scanned.class_names)}
              for source in sorted(set(scanned.sources))}
    return {
        "train_dir": str(layout.train_dir),
        "test_dir": str(layout.test_dir) if layout.test_dir else None,
        "class_names": scanned.class_names,
        "images_used": len(scanned.files),
        "counts": counts,
        "modes": scanned.modes,
        "skipped_count": len(scanned.skipped),
        "skipped": [{"path": s.path, "reason": s.reason} for s in scanned.skipped],
    }


def write_data_report(report: dict, out_dir: Path) -> Path:
    """Save data_report.json and print a short summary, the skipped files included."""
    path = Path(out_dir) / "data_report.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"Data: {report['images_used']} images used, {report['skipped_count']} skipped "
          f"(classes: {', '.join(report['class_names'])})")
    for item in report["skipped"]:
        print(f"  skipped {item['path']}: {item['reason']}")
    return path


def dataset_hash(scanned: ScannedData) -> str:
    """The data's identity: SHA-256 over every image's (source, class, content hash), independent of paths and
    order, so the same images registered from another folder hash the same."""
    rows = sorted(f"{source}\t{scanned.class_names[label]}\t{sha}"
                  for source, label, sha in zip(scanned.sources, scanned.labels, scanned.sha256s))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def folder_fingerprint(layout: Layout) -> str:
    """A cheap stand-in for the dataset hash (paths, sizes, modification times; no file is read): what a re-run
    compares to know the data folder is unchanged without decoding it again."""
    digest = hashlib.sha256()
    for folder in (layout.train_dir, layout.test_dir):
        if folder is None:
            continue
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
