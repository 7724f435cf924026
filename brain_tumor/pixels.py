"""Decoded images on disk, read a batch at a time: a run decodes its images once, and no step holds a whole split in
memory, so resident memory stays flat as the dataset grows.

A pixel file is the raw uint8 rows (N × size × size × 3) with a small JSON beside it (shape, what it holds). Rows are
read with plain `pread`s, not a memory map: the pages then sit in the operating system's cache, not in the process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


class PixelFile:
    """A read-only (N, H, W, 3) uint8 array on disk; indexing reads only the rows asked for."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = json.loads(self.path.with_suffix(".json").read_text())
        self.shape = tuple(self.meta["shape"])
        self.row_bytes = int(np.prod(self.shape[1:]))
        if self.path.stat().st_size != self.shape[0] * self.row_bytes:
            raise ValueError(f"{self.path} holds {self.path.stat().st_size} bytes, not {self.shape}")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item) -> np.ndarray:
        if isinstance(item, (int, np.integer)):
            return self[np.array([item])][0]
        rows = np.arange(len(self))[item]
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        with open(self.path, "rb", buffering=0) as handle:
            for i, row in enumerate(rows):
                out[i] = np.frombuffer(os.pread(handle.fileno(), self.row_bytes, int(row) * self.row_bytes),
                                       np.uint8).reshape(self.shape[1:])
        return out


class PixelWriter:
    """Writes rows one by one to a temporary file; `finish` names it (atomically) and returns the PixelFile."""

    def __init__(self, path: str | Path, image_shape: tuple[int, ...]):
        self.path, self.image_shape, self.count = Path(path), tuple(image_shape), 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self.handle = open(self.partial, "wb")

    def write(self, pixels: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(pixels, np.uint8).tobytes())
        self.count += 1

    def finish(self, **meta) -> PixelFile:
        self.handle.close()
        sidecar = self.partial.with_suffix(".json")
        sidecar.write_text(json.dumps({"shape": [self.count, *self.image_shape], **meta}))
        os.replace(sidecar, self.path.with_suffix(".json"))
        os.replace(self.partial, self.path)
        return PixelFile(self.path)

    def abandon(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


class Rows:
    """Some rows of an image array (in memory or a PixelFile), picked by index; `batches` reads them a batch at a
    time."""

    def __init__(self, source, index):
        self.source, self.index = source, np.asarray(index, np.int64)
        self.shape = (len(self.index), *source.shape[1:])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item) -> np.ndarray:
        return self.source[self.index[item]]


def batches(pixels, size: int = 64):
    """Consecutive batches of an image array, a PixelFile or Rows, as in-memory arrays."""
    for start in range(0, len(pixels), size):
        yield np.asarray(pixels[start:start + size])


def as_rows(pixels) -> Rows:
    return pixels if isinstance(pixels, Rows) else Rows(pixels, np.arange(len(pixels)))
