"""The models, by name (`model_specs.py`), and how a trained one is saved with what it needs to be used again.

Every model takes raw pixels in [0, 255] and does its own preprocessing as its first layers (1/255 and optionally
per-image standardisation for the custom CNNs, the backbone's own for a transfer model), so training and prediction
cannot disagree on it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import tensorflow as tf
from keras import layers

from .errors import UserError
from .files import replacing
from .model_specs import MODEL_SPECS, ModelSpec, get_spec, spec_dict  # noqa: F401 (re-exported)

METADATA_NAME = "brain_tumor.json"  # stored inside the .keras zip, beside Keras' own files

# Keras' default BatchNormalization momentum (0.99) needs several hundred steps before the inference statistics
# catch up with training; with small datasets and early stopping, validation then measures a stale model (seen on
# the synthetic sets: 99 % train accuracy, chance on validation). 0.9 settles in tens of steps; no layer or
# parameter count changes.
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="brain_tumor")
class BackbonePreprocess(layers.Layer):
    """A backbone's own input preprocessing (`keras.applications.<module>.preprocess_input`), as a saveable layer."""

    def __init__(self, module: str, **kwargs):
        super().__init__(**kwargs)
        self.module = module

    def call(self, images):
        return getattr(keras.applications, self.module).preprocess_input(images)

    def get_config(self):
        return {**super().get_config(), "module": self.module}


@keras.saving.register_keras_serializable(package="brain_tumor")
class ResNet50Preprocess(BackbonePreprocess):
    """The name models saved by version 0.1 give ResNet50's preprocessing: they still load."""

    def __init__(self, **kwargs):
        kwargs.pop("module", None)
        super().__init__("resnet50", **kwargs)


@keras.saving.register_keras_serializable(package="brain_tumor")
class PerImageStandardization(layers.Layer):
    """Each image to mean 0 and standard deviation 1 over its pixels (the floor on the deviation keeps a blank image
    finite), so scanners' intensity ranges matter less."""

    def call(self, images):
        mean = keras.ops.mean(images, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.std(images, axis=(1, 2, 3), keepdims=True)
        floor = 1.0 / float(images.shape[1] * images.shape[2] * images.shape[3]) ** 0.5
        return (images - mean) / keras.ops.maximum(std, floor)


@keras.saving.register_keras_serializable(package="brain_tumor")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization computed by TensorFlow's fused kernel (one op forward, one backward, as tf.keras 2
    did; oneDNN's on a CPU). Keras 3 composes it from a dozen element-wise ops instead, which took over half of a
    custom CNN's training step on a CPU (`benchmarks/profile_training.py`). The same weights and the same update of
    the moving statistics; Keras' own computation where the fused kernel does not apply (not 4-D, not channels-last,
    bfloat16 inputs)."""

    def call(self, inputs, training=None, mask=None):
        if len(inputs.shape) != 4 or self.axis not in (-1, 3) or inputs.dtype not in (tf.float32, tf.float16):
            return super().call(inputs, training=training, mask=mask)
        ones = tf.ones(inputs.shape[-1:])
        scale, offset = self.gamma if self.scale else ones, self.beta if self.center else 0 * ones
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(inputs, scale, offset, epsilon=self.epsilon,
                                                                        is_training=True)
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                moving.assign(moving * self.momentum + tf.cast(batch, moving.dtype) * (1 - self.momentum))
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(inputs, scale, offset, mean=self.moving_mean,
                                                         variance=self.moving_variance, epsilon=self.epsilon,
                                                         is_training=False)
        return outputs


def build_cnn_model(filters_list, kernel_size, dropout_rate, image_size=224, num_classes=4, name="cnn",
                    normalize: bool = False):
    """The seed's factory: per filter count Conv2D(same, relu) → BatchNorm → MaxPool 2×2; then Flatten → Dense 128 →
    Dropout → Dense softmax (kept in float32 under mixed precision). `normalize`: per-image standardisation first."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    if normalize:
        x = PerImageStandardization(name="standardize")(x)
    for filters in filters_list:
        x = layers.Conv2D(filters, kernel_size, padding="same", activation="relu")(x)
        x = FusedBatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout_rate)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def weights_source(spec, weights: str | None) -> str | None:
    """What Keras loads for a backbone: "imagenet" (downloaded once into ~/.keras/models, or found there), a local
    weights file, the backbone's file in a local folder (air-gapped clusters), or None (random weights)."""
    if weights in (None, "imagenet"):
        return weights
    path = Path(weights)
    if path.is_dir():
        path = path / spec.weights_file
    if not path.is_file():
        raise UserError(f"{spec.backbone} weights not found: {path}. Give 'imagenet', 'none', the weights file "
                        f"({spec.weights_file}) or a folder holding it.")
    return str(path)


def build_transfer(spec, image_size=224, num_classes=4, weights: str | None = "imagenet"):
    """The backbone, frozen, and the seed's head: GlobalAveragePooling → Dense 256 → BatchNorm → Dropout 0.5 →
    Dense 128 → Dropout 0.3 → Dense softmax."""
    source = weights_source(spec, weights)
    try:
        base = getattr(keras.applications, spec.backbone)(include_top=False, weights=source,
                                                          input_shape=(image_size, image_size, 3))
    except Exception as error:  # no network, a truncated cache, a file for another architecture
        raise UserError(
            f"Could not load {spec.backbone} weights '{weights}': {error}. Without internet access, copy "
            f"{spec.weights_file} to ~/.keras/models/ or give its path or folder; 'none' trains from random "
            f"weights.") from None
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = BackbonePreprocess(spec.preprocess, name=f"{spec.name}_preprocess")(inputs) if spec.preprocess else inputs
    x = base(x, training=False)  # BatchNorm statistics of the backbone stay ImageNet's, also when fine-tuned
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=spec.name)


def backbone_of(model):
    """The nested keras.applications model of a transfer model."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def unfreeze_top(model, layers_count: int) -> int:
    """Make the top `layers_count` layers of a transfer model's backbone trainable, BatchNormalization layers
    excepted (they stay frozen, in inference mode). Returns how many layers became trainable."""
    base = backbone_of(model)
    base.trainable = True
    opened = 0
    for index, layer in enumerate(base.layers):
        top = index >= len(base.layers) - layers_count
        layer.trainable = top and not isinstance(layer, layers.BatchNormalization)
        opened += int(layer.trainable and bool(layer.weights))
    return opened


def build_model(name: str, image_size: int = 224, num_classes: int = 4, weights: str | None = "imagenet",
                normalize: bool = False):
    spec = get_spec(name)
    if spec.family == "transfer":
        return build_transfer(spec, image_size, num_classes, weights)
    return build_cnn_model(spec.filters, spec.kernel_size, spec.dropout, image_size, num_classes, name=name,
                           normalize=normalize)


def count_params(model) -> dict[str, int]:
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    total = sum(int(keras.ops.size(w)) for w in model.weights)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def save_model(model, path: str | Path, metadata: dict) -> Path:
    """Save as .keras with our metadata (class names, image size, …) inside the same file, so they travel together."""
    path = Path(path)
    with replacing(path) as partial:  # whole or not at all: a kill never leaves a truncated model behind
        model.save(partial)
        with zipfile.ZipFile(partial, "a") as archive:
            archive.writestr(METADATA_NAME, json.dumps(metadata, indent=2))
    return path


def read_metadata(path: str | Path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(METADATA_NAME))
    except (zipfile.BadZipFile, KeyError, FileNotFoundError, json.JSONDecodeError):
        raise UserError(f"{path} is not a model saved by this project (a .keras file with {METADATA_NAME} "
                        f"inside). Use a model.keras written by 'brain-tumor train'.") from None


def load_model(path: str | Path):
    """Load in Keras' safe mode (no code from the file runs). Returns (model, metadata)."""
    from . import ensemble  # noqa: F401 (registers the ensemble's own layers, e.g. its mirror image, by name)

    metadata = read_metadata(path)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False), metadata
    except (ValueError, TypeError) as error:  # e.g. a Lambda layer: code that safe mode refuses to run
        raise UserError(f"{path} could not be loaded safely ({str(error).splitlines()[0][:200]}). Only models "
                        f"saved by this project, without custom code, are loaded.") from None


def summary_text(model) -> str:
    """The layer-by-layer summary as plain text: name (type), output shape, parameters; then the totals."""
    lines = [f"Model: {model.name}", f"{'Layer (type)':<52}{'Output shape':<28}{'Params':>14}", "-" * 94]
    for layer in model.layers:
        shape = tuple(layer.output.shape)
        lines.append(f"{layer.name + ' (' + type(layer).__name__ + ')':<52}{shape!s:<28}{layer.count_params():>14,}")
    counts = count_params(model)
    lines += ["-" * 94, f"Total params: {counts['total']:,}   trainable: {counts['trainable']:,}   "
                        f"non-trainable: {counts['non_trainable']:,}"]
    return "\n".join(lines)
