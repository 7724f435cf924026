"""Local pipeline overhead: end-to-end wall time ÷ the sum of the step times, and a re-run with nothing changed ÷ the
first run. Both measured in one run and printed as ratios.

    python benchmarks/pipeline_overhead.py                           # the demo workload (synthetic data)
    python benchmarks/pipeline_overhead.py --data ../shared/datasets/brain-tumor-mri/Training --image-size 128 \
        --epochs 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from brain_tumor.synthetic import write_dataset
from pipelines.config import PipelineConfig
from pipelines.local_runner import run_pipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="default: a synthetic set like the demo's")
    parser.add_argument("--models", default="cnn_a,cnn_b,cnn_c,resnet50")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(write_dataset(Path(tmp) / "data", 100, 25, size=64, seed=0))
        parameters = PipelineConfig.from_values(data=data, models=args.models, image_size=args.image_size,
                                                epochs=args.epochs, lr=1e-3, resnet_weights="none",
                                                run_dir=str(Path(tmp) / "run"))
        start = time.perf_counter()
        runs = run_pipeline(parameters, quiet=True)
        first = time.perf_counter() - start
        start = time.perf_counter()
        rerun = run_pipeline(parameters, quiet=True)
        second = time.perf_counter() - start

    steps = sum(r.seconds for r in runs)
    processes = sum(r.wall_seconds for r in runs)
    print(f"{len(runs)} steps, models {args.models}, image size {args.image_size}, {args.epochs} epochs, data {data}")
    for r in runs:
        print(f"  {r.name:18s} step {r.seconds:7.1f} s   process {r.wall_seconds:7.1f} s")
    print(f"end to end {first:.1f} s; sum of step times {steps:.1f} s; sum of step processes {processes:.1f} s")
    print(f"end-to-end / sum of step times:      {first / steps:.3f}  (goal <= 1.10)")
    print(f"end-to-end / sum of step processes:  {first / processes:.3f}  (the runner's own overhead)")
    print(f"re-run, nothing changed / first run: {second / first:.4f}  ({second:.2f} s, "
          f"{sum(r.status == 'reused' for r in rerun)}/{len(rerun)} steps reused; goal <= 0.05)")


if __name__ == "__main__":
    main()
