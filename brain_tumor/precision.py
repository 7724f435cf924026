"""Mixed precision where the hardware has it: float16 with loss scaling on a GPU (Keras' mixed_float16 policy), and
on a CPU with bfloat16 instructions, TensorFlow's oneDNN graph rewrite to bfloat16 (the model stays float32: Keras'
mixed_bfloat16 policy trains the project's CNNs no faster there). Each model's softmax is float32 in every case
(`models.py`), and a model is always saved in float32, so prediction does not depend on how it was trained."""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import tensorflow as tf

from .errors import UserError
from .recipe import PRECISIONS


def cpu_has_bfloat16() -> bool:
    """Does this CPU execute bfloat16 natively (AVX512_BF16 or AMX)? Elsewhere it would only be emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve(precision: str) -> str:
    """"auto" becomes float16 on a GPU, bfloat16 on a CPU that has it, else float32."""
    if precision not in PRECISIONS:
        raise UserError(f"Unknown precision '{precision}'; choose from {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU"):
        return "float16"
    return "bfloat16" if cpu_has_bfloat16() else "float32"


BFLOAT16_REWRITE = "auto_mixed_precision_onednn_bfloat16"  # TensorFlow's graph option: process-wide once set


@contextlib.contextmanager
def scoped(precision: str):
    """Train in `precision` inside the block (yields what it resolved to); on leaving it, the Keras policy and
    TensorFlow's graph options are what they were, so evaluation, prediction and the next model compute in the
    precision they ask for. Without this, the bfloat16 rewrite stays on for every graph the process builds later."""
    policy = keras.mixed_precision.global_policy()
    options = tf.config.optimizer.get_experimental_options()
    try:
        yield use(precision)
    finally:
        keras.mixed_precision.set_global_policy(policy)
        tf.config.optimizer.set_experimental_options({**options, BFLOAT16_REWRITE: options.get(BFLOAT16_REWRITE,
                                                                                                 False)})


def use(precision: str) -> str:
    """Set this process up to train in `precision` (before the model is built); returns what it resolved to. Use it
    through `scoped`, which undoes it."""
    resolved = resolve(precision)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16" if gpu else "float32"}.get(resolved, "float32")
    keras.mixed_precision.set_global_policy(policy)
    tf.config.optimizer.set_experimental_options({BFLOAT16_REWRITE: resolved == "bfloat16" and not gpu})
    if resolved == "bfloat16" and not gpu and not cpu_has_bfloat16():
        print("warning: this CPU has no bfloat16 instructions: bfloat16 is emulated here, slower than float32")
    return resolved


def float32_copy(model, build):
    """`model` itself when it computes in float32, else the same weights in a float32 model made by `build()`."""
    if model.dtype_policy.name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    copy = build()
    copy.set_weights(model.get_weights())
    return copy
