"""Inference latency on this CPU, from an image file on disk to class probabilities, through `predict_files` (the
code `brain-tumor predict` runs: decode, resize, the model's own preprocessing, forward pass).

Per model: p50 / p95 latency of one image (batch 1) and images per second in batches of 32, each measured in this
one run, and p50 ÷ goal (goals on 2 CPU cores: 50 ms for the custom CNNs, 150 ms for ResNet50).

    python benchmarks/inference_latency.py                 # 224 px, the seed's size
    python benchmarks/inference_latency.py --image-size 128 --repeats 30
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image

from brain_tumor.models import build_model, save_model
from brain_tumor.predict import load_checked, predict_files
from brain_tumor.synthetic import CLASS_NAMES, phantom

GOALS_MS = {"cnn_a": 50, "cnn_b": 50, "cnn_c": 50, "resnet50": 150}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=50, help="batch-1 predictions per model")
    parser.add_argument("--models", default=",".join(GOALS_MS))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        files = []
        for i in range(32):  # 512×512 JPEGs, the real data's typical size
            path = Path(tmp) / f"slice_{i:02d}.jpg"
            Image.fromarray(phantom(i % 4, 512, rng), "L").convert("RGB").save(path, quality=92)
            files.append(path)
        print(f"{os.cpu_count()} CPUs, image size {args.image_size}, {args.repeats} batch-1 runs per model")
        print(f"{'model':<10}{'p50 ms':>9}{'p95 ms':>9}{'goal ms':>9}{'p50/goal':>10}{'img/s @32':>11}"
              f"{'speed-up @32':>14}")
        for name in args.models.split(","):
            model_path = save_model(build_model(name, args.image_size, 4, None), Path(tmp) / f"{name}.keras",
                                    {"model_name": name, "class_names": CLASS_NAMES, "image_size": args.image_size})
            model, metadata = load_checked(model_path)  # as `predict` loads it (safe mode, checked)
            for _ in range(3):  # warm-up: graph tracing, allocator
                predict_files(model, metadata, files[:1])
                predict_files(model, metadata, files)
            latencies = []
            for i in range(args.repeats):
                start = time.perf_counter()
                predict_files(model, metadata, [files[i % len(files)]])
                latencies.append((time.perf_counter() - start) * 1000)
            batch_seconds = []
            for _ in range(5):
                start = time.perf_counter()
                predict_files(model, metadata, files)
                batch_seconds.append(time.perf_counter() - start)
            p50, p95 = np.percentile(latencies, [50, 95])
            throughput = len(files) / np.median(batch_seconds)
            print(f"{name:<10}{p50:>9.1f}{p95:>9.1f}{GOALS_MS[name]:>9}{p50 / GOALS_MS[name]:>10.2f}"
                  f"{throughput:>11.1f}{throughput * p50 / 1000:>13.2f}×")


if __name__ == "__main__":
    main()
