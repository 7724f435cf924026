"""Shared fixtures: small synthetic datasets written to tmp folders (tests never read the real MRI data)."""

import hashlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from brain_tumor.synthetic import CLASS_NAMES, write_dataset  # noqa: E402


@pytest.fixture
def make_data(tmp_path):
    """Write a synthetic ROOT/Training (+ Testing) dataset and return ROOT."""

    def make(train_per_class=12, test_per_class=0, size=32, seed=0, name="data"):
        return write_dataset(tmp_path / name, train_per_class, test_per_class, size=size, seed=seed)

    return make


@pytest.fixture(scope="session")
def learnable_data(tmp_path_factory):
    """A synthetic set big enough to learn in a few CPU epochs (shared by the slower tests)."""
    return write_dataset(tmp_path_factory.mktemp("learnable"), 100, 20, size=32, seed=1)


def tree_digest(folder: Path) -> str:
    """A digest of every path, size and byte under a folder: equal before and after means nothing was modified."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


__all__ = ["CLASS_NAMES", "tree_digest"]
