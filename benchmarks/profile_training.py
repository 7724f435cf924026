"""Where a training step's time goes on this CPU, two ways:

- TensorFlow's profiler: the self-time of every op type over a few training steps (`framework_op_stats`, as
  TensorBoard's profile plugin shows it), against the steps' wall time × threads;
- oneDNN's own timing of every primitive it executes (`ONEDNN_VERBOSE=1`, with `--onednn`): convolution forward /
  backward, matmul, pooling, reorders; the rest of the step is TensorFlow's own (Eigen) kernels and the framework.

    python benchmarks/profile_training.py --model cnn_b --image-size 128 --batch-size 32 --precision bfloat16
    python benchmarks/profile_training.py --model cnn_b --precision bfloat16 --onednn
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

MARK = "== timed steps =="


def train_steps(args, profile_dir: str | None = None) -> float:
    """Train `args.warmup` steps, then `args.steps` more (profiled into `profile_dir`); their wall time in s."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from brain_tumor import precision
    from brain_tumor.models import build_model

    rng = np.random.default_rng(0)
    x = (rng.random((args.batch_size, args.image_size, args.image_size, 3)) * 255).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, args.batch_size)]
    with precision.scoped(args.precision):
        model = build_model(args.model, args.image_size, 4, None)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy", jit_compile=args.jit)
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        if profile_dir:
            tf.profiler.experimental.start(profile_dir)
        else:  # the oneDNN view's child: its verbose lines from here on are the timed steps'
            print(MARK, flush=True)
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        wall = time.perf_counter() - start
        if profile_dir:
            tf.profiler.experimental.stop()
        else:
            print(f"wall {wall:.6f}", flush=True)
    return wall


def op_self_times(profile_dir: str) -> dict[str, float]:
    """µs of self-time per op type (IDLE: threads waiting), from the profiler's trace."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    (path,) = glob.glob(f"{profile_dir}/**/*.xplane.pb", recursive=True)
    data, _ = plugin.xspace_to_tools_data([path], "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    times = collections.Counter()
    for row in table["rows"]:
        cells = dict(zip(columns, (c.get("v") for c in row["c"])))
        times[cells["type"]] += cells["total_self_time"]
    return dict(times)


def primitive_times(output: str) -> dict[str, float]:
    """ms per oneDNN primitive kind (with its direction and ISA), from the verbose lines after MARK."""
    times = collections.Counter()
    for line in output.split(MARK, 1)[1].splitlines():
        fields = line.split(",")
        if len(fields) > 10 and fields[0] == "onednn_verbose" and fields[2:4] == ["primitive", "exec"]:
            kind, implementation, direction = fields[5], fields[6], fields[7]
            isa = implementation.split(":")[-1].split("+")[0]
            times[f"{kind} {direction.replace('forward_training', 'forward')} ({isa})"] += float(fields[-1])
    return dict(times)


def onednn_view(args, argv: list[str]) -> None:
    def child(verbose: bool) -> str:
        done = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True,
                              env={**os.environ, "ONEDNN_VERBOSE": "1" if verbose else "0"})
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        return done.stdout

    wall = float(child(False).split("wall ")[-1]) * 1000  # without the logging's own cost
    times = primitive_times(child(True))
    total = sum(times.values())
    print(f"{'oneDNN primitive (direction, ISA)':62s} {'ms/step':>9s} {'share':>7s}")
    for name, ms in sorted(times.items(), key=lambda item: -item[1]):
        if ms / wall >= 0.005:
            print(f"{name:62s} {ms / args.steps:9.1f} {ms / wall:7.1%}")
    print(f"{'all oneDNN primitives':62s} {total / args.steps:9.1f} {total / wall:7.1%}")
    print(f"{'the rest (TensorFlow kernels, framework)':62s} {(wall - total) / args.steps:9.1f} "
          f"{(wall - total) / wall:7.1%}  of {wall / args.steps:.1f} ms per step")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn_b")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true", help="compile the training step with XLA")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--onednn", action="store_true", help="oneDNN's per-primitive view instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train_steps(args)
        return
    print(f"{args.model}, {args.image_size}px, batch {args.batch_size}, {args.precision}"
          f"{', XLA' if args.jit else ''}, {args.steps} steps after {args.warmup}, {os.cpu_count()} CPU cores")
    if args.onednn:
        onednn_view(args, [a for a in sys.argv[1:] if a != "--onednn"])
        return
    with tempfile.TemporaryDirectory() as folder:
        wall = train_steps(args, folder)
        times = op_self_times(folder)
    busy = sum(v for k, v in times.items() if k != "IDLE")
    print(f"{wall / args.steps * 1000:.1f} ms per training step ({args.batch_size * args.steps / wall:.1f} images/s); "
          f"ops busy {busy / args.steps / 1000:.1f} ms per step, summed over threads")
    print(f"{'op type':42s} {'ms/step':>9s} {'share of busy':>14s}")
    for name, us in sorted(times.items(), key=lambda item: -item[1]):
        if name != "IDLE" and us / busy >= 0.01:
            print(f"{name:42s} {us / args.steps / 1000:9.1f} {us / busy:14.1%}")


if __name__ == "__main__":
    main()
