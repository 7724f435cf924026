"""The four models, by name, and how a trained one is saved with what it needs to be used again.

Every model takes raw pixels in [0, 255] and does its own preprocessing as its first layer (1/255 for the custom
CNNs, ResNet50's `preprocess_input` for ResNet50), so training and prediction cannot disagree on it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
from keras import layers

from .errors import UserError
from .model_specs import MODEL_SPECS, ModelSpec, get_spec, spec_dict

METADATA_NAME = "brain_tumor.json"  # stored inside the .keras zip, beside Keras' own files

# Keras' default BatchNormalization momentum (0.99) needs several hundred steps before the inference statistics
# catch up with training; with small datasets and early stopping, validation then measures a stale model (seen on
# the synthetic sets: 99 % train accuracy, chance on validation). 0.9 settles in tens of steps; no layer or
# parameter count changes.
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="brain_tumor")
class ResNet50Preprocess(layers.Layer):
    """ResNet50's own input preprocessing (RGB→BGR, ImageNet mean subtracted), as a saveable layer."""

    def call(self, images):
        return keras.applications.resnet50.preprocess_input(images)


def build_cnn_model(filters_list, kernel_size, dropout_rate, image_size=224, num_classes=4, name="cnn"):
    """The seed's factory: per filter count Conv2D(same, relu) → BatchNorm → MaxPool 2×2; then Flatten → Dense 128 →
    Dropout → Dense softmax."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    for filters in filters_list:
        x = layers.Conv2D(filters, kernel_size, padding="same", activation="relu")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout_rate)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def build_resnet50(image_size=224, num_classes=4, weights: str | None = "imagenet"):
    """Frozen ResNet50 base and the seed's head. `weights`: "imagenet" (Keras downloads once, then reads its cache
    in ~/.keras/models), a local weights file (air-gapped clusters), or None."""
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise UserError(f"ResNet50 weights file not found: {weights}. Give the path of "
                        f"resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, 'imagenet' or 'none'.")
    try:
        base = keras.applications.ResNet50(include_top=False, weights=weights,
                                           input_shape=(image_size, image_size, 3))
    except UserError:
        raise
    except Exception as error:  # no network, a truncated cache, a file for another architecture
        raise UserError(
            f"Could not load ResNet50 weights '{weights}': {error}. Without internet access, copy "
            f"resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 to ~/.keras/models/ or pass its path with "
            f"--resnet-weights PATH; --resnet-weights none trains from random weights.") from None
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = ResNet50Preprocess(name="resnet50_preprocess")(inputs)
    x = base(x, training=False)  # BatchNorm statistics of the frozen base stay ImageNet's
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet50")


def build_model(name: str, image_size: int = 224, num_classes: int = 4, resnet_weights: str | None = "imagenet"):
    spec = get_spec(name)
    if spec.family == "transfer":
        return build_resnet50(image_size, num_classes, resnet_weights)
    return build_cnn_model(spec.filters, spec.kernel_size, spec.dropout, image_size, num_classes, name=name)


def count_params(model) -> dict[str, int]:
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    total = sum(int(keras.ops.size(w)) for w in model.weights)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def save_model(model, path: str | Path, metadata: dict) -> Path:
    """Save as .keras with our metadata (class names, image size, …) inside the same file, so they travel together."""
    path = Path(path)
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:
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
