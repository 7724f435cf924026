"""Scale: one epoch of cnn_b at 224 px on generated datasets of growing size, through the real pipeline (each step in
its own process): wall time per training image and the peak resident memory of the training step's process, with
the ratios of the largest size to the smallest. Goals: time per image within 1.2×, peak memory within 1.5×.

    python benchmarks/scale.py --sizes 1000,5000,20000 --out runs/scale
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from brain_tumor.synthetic import write_dataset
from pipelines.config import PipelineConfig
from pipelines.local_runner import run_pipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,20000", help="images per dataset (split over 4 classes)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--out", default="runs/scale", help="a scratch folder (emptied)")
    args = parser.parse_args()

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    rows = []
    for n in map(int, args.sizes.split(",")):
        start = time.perf_counter()
        data = write_dataset(out / f"data-{n}", n // 4, 0, size=args.image_size, seed=n)
        generated = time.perf_counter() - start
        config = PipelineConfig.from_values(data=str(data), models="cnn_b", epochs=1, image_size=args.image_size,
                                            ensemble=False, weights="none", run_dir=str(out / f"run-{n}"))
        runs = {r.name: r for r in run_pipeline(config, quiet=True)}
        training = json.loads((out / f"run-{n}" / "models" / "cnn_b" / "training.json").read_text())
        images = json.loads((out / f"run-{n}" / "data_report.json").read_text())["splits"]["train"]
        images = sum(images.values())
        step = runs["train_cnn_b"]
        rows.append({"n": n, "train_images": images, "epoch_seconds": training["train_seconds"],
                     "ms_per_image": 1000 * training["train_seconds"] / images, "peak_mb": step.peak_mb,
                     "register_peak_mb": runs["register_dataset"].peak_mb, "generated_s": generated})
        print(rows[-1], flush=True)
        shutil.rmtree(out / f"data-{n}")
        shutil.rmtree(out / f"run-{n}" / "cache", ignore_errors=True)
    print("| images | training images | training epoch (s) | ms per image | training step peak memory (MB) "
          "| register_dataset peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['n']:,} | {row['train_images']:,} | {row['epoch_seconds']:.0f} | {row['ms_per_image']:.1f} "
              f"| {row['peak_mb']:.0f} | {row['register_peak_mb']:.0f} |")
    first, last = rows[0], rows[-1]
    print(f"{last['n']:,} / {first['n']:,} images: time per image ×{last['ms_per_image'] / first['ms_per_image']:.2f} "
          f"(goal ≤ 1.2), training peak memory ×{last['peak_mb'] / first['peak_mb']:.2f} (goal ≤ 1.5)")


if __name__ == "__main__":
    main()
