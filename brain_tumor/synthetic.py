"""Small synthetic MRI-like phantoms: a head (skull ring, grey brain) with a class-specific bright lesion, so a model
can learn them in a few epochs. Used by the demo and the tests; the real data never ships with the project.
`plant_twins` adds near-duplicates of training images to the test folder, as the real Kaggle set has."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import UserError

CLASS_NAMES = ["glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"]


def _disk(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def phantom(class_index: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One grey-level slice (size × size uint8). Glioma: a large irregular lesion inside a hemisphere;
    meningioma: a round lesion against the skull; no tumour: none; pituitary: a small lesion low in the midline."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cy, cx = 0.5 + rng.uniform(-0.06, 0.06), 0.5 + rng.uniform(-0.06, 0.06)
    ry, rx = rng.uniform(0.34, 0.44), rng.uniform(0.28, 0.4)
    image = np.zeros((size, size), np.float32)
    image[_disk(yy, xx, cy, cx, ry, rx)] = 200  # skull
    brain = _disk(yy, xx, cy, cx, ry - 0.04, rx - 0.04)
    fy, fx, phase = rng.uniform(3, 9), rng.uniform(3, 9), rng.uniform(0, 2 * np.pi, 2)  # anatomy-like texture
    image[brain] = 95 + 40 * np.sin(xx[brain] * fx + phase[0]) * np.cos(yy[brain] * fy + phase[1])
    side = rng.choice([-1, 1])
    if class_index == 0:
        ly, lx, r = cy + rng.uniform(-0.15, 0.1), cx + side * rng.uniform(0.1, 0.18), rng.uniform(0.09, 0.13)
        for _ in range(3):  # irregular: three overlapping blobs
            image[_disk(yy, xx, ly + rng.normal(0, 0.03), lx + rng.normal(0, 0.03), r, r * 0.8)] = 235
    elif class_index == 1:
        angle = rng.uniform(-2.5, -0.6)
        ly, lx = cy + (ry - 0.08) * np.sin(angle), cx + side * (rx - 0.08) * abs(np.cos(angle))
        image[_disk(yy, xx, ly, lx, 0.08, 0.08)] = 250
    elif class_index == 3:
        image[_disk(yy, xx, cy + 0.18, cx + rng.normal(0, 0.01), 0.05, 0.06)] = 245
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_dataset(root: str | Path, train_per_class: int = 40, test_per_class: int = 0, size: int = 64,
                  seed: int = 0, class_names: list[str] = CLASS_NAMES) -> Path:
    """Write ROOT/Training/<class>/*.jpg (and ROOT/Testing/… when test_per_class > 0). Returns ROOT."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for folder, count in (("Training", train_per_class), ("Testing", test_per_class)):
        for index, name in enumerate(class_names):
            if not count:
                continue
            target = root / folder / name
            target.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(phantom(index, size, rng), "L").convert("RGB").save(target / f"{name}_{i:04d}.jpg",
                                                                                  quality=92)
    return root


def plant_twins(root: str | Path, count: int, seed: int = 0) -> list[tuple[Path, Path]]:
    """Copy `count` images from ROOT/Training/<class>/ (seeded choice, round-robin over classes) to
    ROOT/Testing/<class>/twin_XXXX.jpg as near-duplicates: shrunk to 90% of their side and re-encoded as JPEG at
    quality 75. Returns (copy, original) pairs."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    folders = sorted(p for p in (root / "Training").iterdir() if p.is_dir()) if (root / "Training").is_dir() else []
    shuffled = [[files[i] for i in rng.permutation(len(files))] for files in (sorted(f.glob("*.jpg")) for f in folders)]
    deepest = max((len(files) for files in shuffled), default=0)
    chosen = [files[k] for k in range(deepest) for files in shuffled if k < len(files)]  # round-robin over classes
    if count > len(chosen):
        raise UserError(f"Cannot plant {count} twins: {root / 'Training'} has {len(chosen)} .jpg images.")
    pairs = []
    for i, original in enumerate(chosen[:count]):
        copy = root / "Testing" / original.parent.name / f"twin_{i:04d}.jpg"
        copy.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(original) as image:
            side = (max(1, round(image.width * 0.9)), max(1, round(image.height * 0.9)))
            image.convert("RGB").resize(side, Image.Resampling.BILINEAR).save(copy, quality=75)
        pairs.append((copy, original))
    return pairs
