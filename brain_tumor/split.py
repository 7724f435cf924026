"""Train / validation / test carving that never lets near-duplicate images straddle two splits.

Near-duplicates are found by perceptual hash (pHash, 64 bits): two images whose hashes differ in at most
`max_distance` bits are linked, and every connected group of linked images goes to one split, whole. Groups are then
dealt to the splits class by class (stratified), in an order fixed by the seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .errors import UserError

DEFAULT_MAX_DISTANCE = 6  # bits out of 64; see benchmarks/README.md for how it was chosen on the real data


def hash_bits(phashes: list[str]) -> np.ndarray:
    """Hex pHashes (16 digits) as 64-bit integers, for XOR + bit count."""
    return np.array([int(h, 16) for h in phashes], dtype=np.uint64)


PAIRS_PER_BLOCK = 2**22  # hash pairs compared at once: 32 MB of XORs, whatever the number of images


def near_duplicate_groups(phashes: list[str], max_distance: int = DEFAULT_MAX_DISTANCE) -> np.ndarray:
    """A group id per image (0..k-1, numbered in first-seen order); linked images share one."""
    n = len(phashes)
    hashes = hash_bits(phashes)
    block = max(1, PAIRS_PER_BLOCK // max(n, 1))
    rows, cols = [], []
    for start in range(0, n, block):
        distances = np.bitwise_count(hashes[start:start + block, None] ^ hashes[None, :])
        i, j = np.nonzero(distances <= max_distance)
        i += start
        keep = i < j
        rows.append(i[keep])
        cols.append(j[keep])
    edges = np.concatenate(rows) if rows else np.array([], dtype=np.int64)
    adjacency = coo_matrix((np.ones(len(edges)), (edges, np.concatenate(cols) if cols else edges)), shape=(n, n))
    _, labels = connected_components(adjacency, directed=False)
    _, first_seen = np.unique(labels, return_index=True)
    renumber = np.empty(len(first_seen), dtype=np.int64)
    renumber[np.argsort(np.argsort(first_seen))] = np.arange(len(first_seen))
    return renumber[labels]


def assign_splits(labels: np.ndarray, groups: np.ndarray, val_fraction: float, test_fraction: float,
                  seed: int, fixed_test: np.ndarray | None = None) -> np.ndarray:
    """'train', 'val' or 'test' per image.

    Images in `fixed_test` (e.g. from a Testing folder) are 'test' and take no part in the carving; the others are
    carved. A group is labelled by its most common class; each class's groups are visited in a seeded random order and
    a group joins test, then val, while that brings the split closer to its share of the class.
    """
    for name, fraction in (("validation", val_fraction), ("test", test_fraction)):
        if not 0 <= fraction < 1:
            raise UserError(f"The {name} fraction must be in [0, 1), got {fraction}.")
    if val_fraction + test_fraction >= 1:
        raise UserError(f"Validation + test fractions must leave images to train on, got "
                        f"{val_fraction} + {test_fraction}.")
    fixed_test = np.zeros(len(labels), bool) if fixed_test is None else np.asarray(fixed_test, bool)
    carved = ~fixed_test
    sizes = np.bincount(groups[carved], minlength=groups.max() + 1)
    counts = np.zeros((len(sizes), labels.max() + 1), dtype=np.int64)  # images per (group, class)
    np.add.at(counts, (groups[carved], labels[carved]), 1)
    group_label = counts.argmax(axis=1)
    group_split = np.full(len(sizes), "train", dtype=object)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels[carved]):
        class_groups = np.flatnonzero((group_label == label) & (sizes > 0))
        total = sizes[class_groups].sum()
        taken = {"test": 0, "val": 0}
        for g in class_groups[rng.permutation(len(class_groups))]:
            for split, fraction in (("test", test_fraction), ("val", val_fraction)):
                if taken[split] + sizes[g] / 2 <= fraction * total:
                    group_split[g] = split
                    taken[split] += sizes[g]
                    break
    return np.where(fixed_test, "test", group_split[groups]).astype(str)


def carve(phashes: list[str], labels: np.ndarray, sources: list[str], val_fraction: float, test_fraction: float,
          seed: int, max_distance: int = DEFAULT_MAX_DISTANCE) -> tuple[np.ndarray, np.ndarray]:
    """Groups and splits for a scanned dataset. A test fraction applies only when there is no test folder."""
    groups = near_duplicate_groups(phashes, max_distance)
    fixed_test = np.array([s == "test" for s in sources])
    splits = assign_splits(labels, groups, val_fraction, 0.0 if fixed_test.any() else test_fraction, seed,
                           fixed_test)
    for split in ("train", "val"):
        if not np.any(splits == split):
            raise UserError(f"The {split} split is empty ({len(labels)} images, validation fraction {val_fraction}): "
                            f"add images or change --val-fraction.")
    return groups, splits


def write_manifest(path: Path, files: list[str], class_names: list[str], labels: np.ndarray, splits: np.ndarray,
                   phashes: list[str], sha256s: list[str], groups: np.ndarray) -> pd.DataFrame:
    """The split as a CSV: one row per image (file, class, label, split, phash, sha256, group)."""
    manifest = pd.DataFrame({
        "file": files,
        "class": [class_names[i] for i in labels],
        "label": labels,
        "split": splits,
        "phash": phashes,
        "sha256": sha256s,
        "group": groups,
    })
    manifest.to_csv(path, index=False)
    return manifest
