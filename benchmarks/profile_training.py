"""Where a training step's time goes on this CPU. oneDNN times every primitive it executes (`ONEDNN_VERBOSE=1`):
the script trains a model for a few steps with that logging on, sums the primitives' times per kind (convolution
forward / backward, matmul, pooling, reorders, ...) and sets them against the same steps' wall time measured in a
second run without the logging. The remainder is what is not oneDNN: TensorFlow's own (Eigen) kernels — batch norm,
activations, the optimizer's updates, the loss — and the framework between them.

    python benchmarks/profile_training.py --model cnn_a --image-size 128 --batch-size 32 --precision bfloat16
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time

MARK = "== timed steps =="


def child(args) -> None:
    """Train `args.warmup` steps, print MARK, train `args.steps` steps and print their wall time."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from brain_tumor import precision
    from brain_tumor.models import build_model

    rng = np.random.default_rng(0)
    x = (rng.random((args.batch_size, args.image_size, args.image_size, 3)) * 255).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, args.batch_size)]
    with precision.scoped(args.precision):
        model = build_model(args.model, args.image_size, 4, None)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy",
                      jit_compile=args.jit)
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        print(MARK, flush=True)
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        print(f"wall {time.perf_counter() - start:.6f}", flush=True)


def run_child(argv: list[str], verbose: bool) -> str:
    env = {**os.environ, "ONEDNN_VERBOSE": "1" if verbose else "0"}
    done = subprocess.run([sys.executable, __file__, "--child", *argv], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return done.stdout


def primitive_times(output: str) -> dict[str, float]:
    """ms per primitive kind (with its direction), from the verbose lines after MARK."""
    times = collections.Counter()
    for line in output.split(MARK, 1)[1].splitlines():
        fields = line.split(",")
        if len(fields) > 10 and fields[0] == "onednn_verbose" and fields[2:4] == ["primitive", "exec"]:
            kind, implementation, direction = fields[5], fields[6], fields[7]
            isa = implementation.split(":")[-1].split("+")[0]
            times[f"{kind} {direction.replace('forward_training', 'forward')} ({isa})"] += float(fields[-1])
    return dict(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn_a")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true", help="compile the training step with XLA")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    argv = [a for a in sys.argv[1:]]
    wall = float(run_child(argv, verbose=False).split("wall ")[-1]) * 1000
    times = primitive_times(run_child(argv, verbose=True))
    total = sum(times.values())
    print(f"{args.model}, {args.image_size}px, batch {args.batch_size}, {args.precision}"
          f"{', XLA' if args.jit else ''}: {wall / args.steps:.1f} ms per training step "
          f"({args.batch_size * args.steps / wall * 1000:.1f} images/s), wall time of {args.steps} steps")
    print(f"{'oneDNN primitive (direction, ISA)':62s} {'ms/step':>9s} {'share':>7s}")
    for name, ms in sorted(times.items(), key=lambda item: -item[1]):
        if ms / wall >= 0.005:
            print(f"{name:62s} {ms / args.steps:9.1f} {ms / wall:7.1%}")
    print(f"{'all oneDNN primitives':62s} {total / args.steps:9.1f} {total / wall:7.1%}")
    print(f"{'the rest (TensorFlow kernels, framework)':62s} {(wall - total) / args.steps:9.1f} "
          f"{(wall - total) / wall:7.1%}")


if __name__ == "__main__":
    main()
