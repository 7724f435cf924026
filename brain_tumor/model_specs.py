"""The four models' designs (the seed's table), by name — without importing TensorFlow."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    """One row of the seed's table. `filters` is empty for ResNet50."""

    name: str
    filters: tuple[int, ...]
    kernel_size: int
    dropout: float
    batch_size: int
    family: str  # "custom_cnn" or "transfer"


MODEL_SPECS = {
    "cnn_a": ModelSpec("cnn_a", (32, 64, 128), 3, 0.3, 32, "custom_cnn"),
    "cnn_b": ModelSpec("cnn_b", (16, 32, 64, 128), 3, 0.5, 64, "custom_cnn"),
    "cnn_c": ModelSpec("cnn_c", (32, 64, 128), 5, 0.4, 32, "custom_cnn"),
    "resnet50": ModelSpec("resnet50", (), 0, 0.5, 32, "transfer"),
}


def get_spec(name: str) -> ModelSpec:
    if name not in MODEL_SPECS:
        raise UserError(f"Unknown model '{name}'. Choose from: {', '.join(MODEL_SPECS)}.")
    return MODEL_SPECS[name]


def spec_dict(name: str) -> dict:
    return asdict(get_spec(name))
