"""The models' designs, by name — without importing TensorFlow: the seed's three custom CNNs, and the transfer models
(a keras.applications backbone, ImageNet weights, the seed's head). Adding a backbone is one entry here."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    """One row of the seed's table (custom CNNs), or a transfer model: its keras.applications `backbone`, the
    keras.applications module whose `preprocess_input` it needs (empty: the backbone preprocesses [0, 255] pixels
    itself), and the file Keras caches its ImageNet weights in (~/.keras/models/)."""

    name: str
    filters: tuple[int, ...]
    kernel_size: int
    dropout: float
    batch_size: int
    family: str  # "custom_cnn" or "transfer"
    backbone: str = ""
    preprocess: str = ""
    weights_file: str = ""


MODEL_SPECS = {
    "cnn_a": ModelSpec("cnn_a", (32, 64, 128), 3, 0.3, 32, "custom_cnn"),
    "cnn_b": ModelSpec("cnn_b", (16, 32, 64, 128), 3, 0.5, 64, "custom_cnn"),
    "cnn_c": ModelSpec("cnn_c", (32, 64, 128), 5, 0.4, 32, "custom_cnn"),
    "resnet50": ModelSpec("resnet50", (), 0, 0.5, 32, "transfer", "ResNet50", "resnet50",
                          "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "efficientnetv2b0": ModelSpec("efficientnetv2b0", (), 0, 0.5, 32, "transfer", "EfficientNetV2B0", "",
                                  "efficientnetv2-b0_notop.h5"),
}


def get_spec(name: str) -> ModelSpec:
    if name not in MODEL_SPECS:
        raise UserError(f"Unknown model '{name}'. Choose from: {', '.join(MODEL_SPECS)}.")
    return MODEL_SPECS[name]


def spec_dict(name: str) -> dict:
    return asdict(get_spec(name))
