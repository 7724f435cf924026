"""Input-pipeline and training throughput: the project's pipeline (decode once, gather from memory) against a naive
one (read and decode every JPEG every epoch), and the training FLOP/s reached as a share of this machine's measured
float32 matmul peak. With --precision, instead: per custom CNN, training images/s in float32 and in that precision
(`brain_tumor/precision.py`), the training GFLOP/s that is and its share of this machine's matmul and convolution
peaks of the same precision (measured in the same run), and the validation macro-F1 of both after the same epochs.
Everything is measured in one run and printed as ratios (this machine is noisy).

    python benchmarks/train_throughput.py --data ../shared/datasets/brain-tumor-mri/Training --model cnn_a \
        --image-size 128 --limit 1024
    python benchmarks/train_throughput.py --data ../shared/datasets/brain-tumor-mri/Training --image-size 128 \
        --precision auto --epochs 3
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from brain_tumor.augment import build_augmentation  # noqa: E402
from brain_tumor.data import find_layout, list_class_files, scan  # noqa: E402
from brain_tumor.inputs import make_dataset  # noqa: E402
from brain_tumor.models import build_model  # noqa: E402


def naive_dataset(files, labels, num_classes, image_size, batch_size, augmentation):
    """What a first tf.data port of ImageDataGenerator does: read and decode every file, every epoch."""
    def load(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, (image_size, image_size))
        return image, tf.one_hot(label, num_classes)

    dataset = tf.data.Dataset.from_tensor_slices((files, labels)).shuffle(len(files), seed=0)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if augmentation is not None:
        dataset = dataset.map(lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def images_per_second(dataset, n_images):
    start = time.perf_counter()
    for _ in dataset:
        pass
    return n_images / (time.perf_counter() - start)


def training_images_per_second(model, dataset, n_images):
    model.fit(dataset.take(2), epochs=1, verbose=0, shuffle=False)  # compile the step outside the timing
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return n_images / (time.perf_counter() - start)


def forward_flops_per_image(model) -> int:
    """Multiply-adds × 2 of the Conv2D and Dense layers (the rest is noise next to them)."""
    flops = 0
    for layer in model._flatten_layers():
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w = layer.kernel_size
            flops += 2 * h * w * c_out * k_h * k_w * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            flops += 2 * layer.input.shape[-1] * layer.units
    return flops


def matmul_peak_flops(n=2048, repeats=20, dtype=tf.float32) -> float:
    """FLOP/s of an n×n matmul in `dtype` (bfloat16: oneDNN's bfloat16 kernels where the CPU has them)."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    tf.matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, b)
    c.numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def conv_peak_flops(dtype=tf.float32, batch=32, size=64, channels=64, kernel=3, repeats=10) -> float:
    """FLOP/s of a 3×3, 64→64-channel convolution on 64×64 maps (the custom CNNs' middle layers), forward."""
    x = tf.cast(tf.random.normal((batch, size, size, channels)), dtype)
    w = tf.cast(tf.random.normal((kernel, kernel, channels, channels)), dtype)
    conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"))
    conv(x, w).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        y = conv(x, w)
    y.numpy()
    return 2 * batch * size * size * channels * channels * kernel * kernel * repeats / (time.perf_counter() - start)


def peaks(kind: str) -> dict[str, float]:
    """This machine's measured matmul and convolution FLOP/s in `kind` (float32 or bfloat16), best of two."""
    dtype = tf.bfloat16 if kind == "bfloat16" else tf.float16 if kind == "float16" else tf.float32
    return {"matmul": max(matmul_peak_flops(dtype=dtype) for _ in range(2)),
            "conv": max(conv_peak_flops(dtype=dtype) for _ in range(2))}


def precision_comparison(scanned, names, args) -> None:
    """Per custom CNN: images/s of one training epoch in float32 and in `args.precision` (alternated, best of two),
    the training FLOP/s that is (3 × the forward FLOPs per image: backward ≈ 2 × forward) and its share of this
    machine's matmul and convolution peaks in the same precision, measured here; then validation macro-F1 of each
    after `args.epochs` epochs from the same seed (a seeded random 80/20 split of the sample: fine for comparing
    two arithmetics on the same images, not a grouped evaluation)."""
    from brain_tumor import precision as mixed
    from brain_tumor.evaluation import evaluate_predictions, predict_probabilities
    from brain_tumor.recipe import SEED
    from brain_tumor.training import TrainConfig, fit

    chosen = mixed.resolve(args.precision)
    kinds = list(dict.fromkeys(("float32", chosen)))
    order = np.random.default_rng(0).permutation(len(scanned.labels))
    cut = int(0.8 * len(order))
    train, val = order[:cut], order[cut:]
    x, y, vx, vy = scanned.pixels[train], scanned.labels[train], scanned.pixels[val], scanned.labels[val]
    dataset = make_dataset(x, y, len(names), args.batch_size, shuffle=True)
    print(f"precision {args.precision} → {chosen} on this machine (bfloat16 instructions: "
          f"{mixed.cpu_has_bfloat16()}); {len(y)} training / {len(vy)} validation images at {args.image_size}px, "
          f"batch {args.batch_size}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
    peak = {kind: peaks(kind) for kind in kinds}
    for kind in kinds:
        print(f"measured peak, {kind}: matmul {peak[kind]['matmul'] / 1e9:.1f} GFLOP/s, "
              f"convolution {peak[kind]['conv'] / 1e9:.1f} GFLOP/s")
    print(f"{'model':6s} {'precision':9s} {'images/s':>9s} {'GFLOP/s':>8s} {'% matmul peak':>14s} "
          f"{'% conv peak':>12s}")
    for name in ("cnn_a", "cnn_b", "cnn_c"):
        rate, f1 = {}, {}
        for _ in range(2):  # alternate, keep the best of each: the machine is noisy
            for kind in kinds:
                with mixed.scoped(kind):
                    model = build_model(name, args.image_size, len(names), None)
                    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
                    rate[kind] = max(rate.get(kind, 0.0), training_images_per_second(model, dataset, len(y)))
        flops = 3 * forward_flops_per_image(build_model(name, args.image_size, len(names), None))
        for kind in kinds:
            print(f"{name:6s} {kind:9s} {rate[kind]:9.1f} {flops * rate[kind] / 1e9:8.1f} "
                  f"{flops * rate[kind] / peak[kind]['matmul']:14.1%} {flops * rate[kind] / peak[kind]['conv']:12.1%}")
        if args.epochs:
            for kind in kinds:
                with mixed.scoped(kind):
                    model = build_model(name, args.image_size, len(names), None)
                    recipe = replace(SEED, lr=1e-3, epochs=args.epochs, augment="none", patience=args.epochs)
                    fit(model, (x, y), (vx, vy), len(names), TrainConfig(recipe, args.batch_size, 0, "none"),
                        verbose=0)
                f1[kind] = evaluate_predictions(vy, predict_probabilities(model, vx), names)["macro_f1"]
            print(f"{name}: {chosen} ÷ float32 images/s {rate[chosen] / rate['float32']:.2f}x; validation macro-F1 "
                  f"after {args.epochs} epochs: " + ", ".join(f"{k} {v:.3f}" for k, v in f1.items()))
        else:
            print(f"{name}: {chosen} ÷ float32 images/s {rate[chosen] / rate['float32']:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="cnn_a")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=1024, help="images used (a seeded sample of the folder)")
    parser.add_argument("--precision", help="compare float32 with this precision (auto, bfloat16, float16) instead")
    parser.add_argument("--epochs", type=int, default=3,
                        help="with --precision: epochs before comparing macro-F1 (0: throughput only)")
    args = parser.parse_args()

    layout = find_layout(args.data)
    classes, _ = list_class_files(layout.train_dir)
    names = sorted(classes)
    every = [(str(p), names.index(c)) for c in names for p in classes[c]]
    chosen = [every[i] for i in sorted(np.random.default_rng(0).permutation(len(every))[: args.limit])]
    files, labels = [f for f, _ in chosen], np.array([lab for _, lab in chosen])

    start = time.perf_counter()
    scanned = scan(layout, args.image_size, files=[(f, names[lab]) for f, lab in chosen],
                   class_names=names, progress=False)
    decode_seconds = time.perf_counter() - start
    n = len(scanned.files)
    if args.precision:
        precision_comparison(scanned, names, args)
        return
    augmentation = build_augmentation(seed=0)
    pipelines = {
        (kind, augmented): (make_dataset(scanned.pixels, scanned.labels, len(names), args.batch_size, shuffle=True,
                                         augmentation=augmentation if augmented else None) if kind == "ours" else
                            naive_dataset(files, labels, len(names), args.image_size, args.batch_size,
                                          augmentation if augmented else None))
        for kind in ("ours", "naive") for augmented in (False, True)
    }
    for dataset in pipelines.values():
        images_per_second(dataset, n)  # warm up: tracing, thread pools, file cache
    input_rate = {key: max(images_per_second(dataset, n) for _ in range(2)) for key, dataset in pipelines.items()}

    model = build_model(args.model, args.image_size, len(names), None)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy")
    train_rate = {"ours": 0.0, "naive": 0.0}
    for _ in range(2):  # alternate, keep the best of each: the machine is noisy
        for kind in train_rate:
            train_rate[kind] = max(train_rate[kind], training_images_per_second(model, pipelines[kind, True], n))
    ours_train, naive_train = train_rate["ours"], train_rate["naive"]

    train_flops = 3 * forward_flops_per_image(model) * ours_train  # backward ≈ 2× forward
    peak = peaks("float32")["matmul"]

    print(f"model {args.model} at {args.image_size}px, batch {args.batch_size}, {n} images, "
          f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
    print(f"one-time decode (scan, pHash, resize): {n / decode_seconds:8.1f} images/s")
    for augmented, label in ((False, "input pipeline alone, no augmentation:"),
                             (True, "input pipeline alone, augmented:")):
        ours_input, naive_input = input_rate["ours", augmented], input_rate["naive", augmented]
        print(f"{label:40s} ours {ours_input:8.1f} images/s, naive {naive_input:8.1f} images/s, "
              f"ratio {ours_input / naive_input:.2f}x")
    print(f"{'training epoch, augmented:':40s} ours {ours_train:8.1f} images/s, naive {naive_train:8.1f} images/s, "
          f"ratio {ours_train / naive_train:.2f}x")
    print(f"training FLOP/s {train_flops / 1e9:.1f} GFLOP/s vs float32 matmul peak {peak / 1e9:.1f} GFLOP/s: "
          f"{train_flops / peak:.1%} of peak")


if __name__ == "__main__":
    main()
