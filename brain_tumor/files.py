"""Writing a file so that a kill, a crash or a full disk never leaves half of it: write to a temporary name in the
same folder, then rename (an atomic step on one file system). A reader sees the old file or the new one, whole."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path` to write; renamed to `path` when the block ends without an error,
    removed when it fails."""
    path = Path(path)
    partial = path.with_name(f".{os.getpid()}.partial.{path.name}")  # same suffixes: some writers check them
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with replacing(path) as partial:
        partial.write_text(text)
    return Path(path)


def copy(source: str | Path, path: str | Path) -> Path:
    with replacing(path) as partial:
        shutil.copyfile(source, partial)
    return Path(path)
