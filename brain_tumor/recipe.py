"""The training recipe: its named choices, and the seed notebook's recipe kept exactly (importable without
TensorFlow: the command line and the pipeline's parameters list these; `training` acts on them).

The pipeline's parameters (`pipelines/config.py`) hold the tuned recipe's values, chosen on the grouped validation
split (benchmarks/README.md, "Recipe study"); `recipe=seed` replaces them all by SEED below.
"""

from __future__ import annotations

from dataclasses import dataclass

RECIPES = ("tuned", "seed")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "plateau", "constant")  # cosine: linear warm-up, then cosine decay to 0 over the epochs
AUGMENTATIONS = ("seed", "light", "none")  # seed: the notebook's eight transforms; light: flips and small moves
AUGMENT_PLACES = ("auto", "model", "tfdata", "none")  # auto: model on a GPU, tfdata on a CPU
MONITORS = ("val_loss", "val_accuracy", "val_macro_f1")  # what early stopping watches and restores the best of
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Recipe:
    """How one model is trained. `batch_size` 0 means the model's own (the seed's table)."""

    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    warmup_epochs: int
    augment: str
    label_smoothing: float
    epochs: int
    patience: int
    monitor: str
    batch_size: int
    crop: bool  # crop each slice to the head's bounding box before resizing (scale and framing match across sources)
    normalize: bool  # standardise each image's intensities (mean 0, sd 1) inside the custom CNNs


# The notebook: Adam 1e-4, its eight augmentations, EarlyStopping(val_loss, 5, restore best),
# ReduceLROnPlateau(0.5, 3), 15 epochs, the batch size of each model's row, no cropping or normalisation.
SEED = Recipe(optimizer="adam", lr=1e-4, weight_decay=0.0, schedule="plateau", warmup_epochs=0, augment="seed",
              label_smoothing=0.0, epochs=15, patience=5, monitor="val_loss", batch_size=0, crop=False,
              normalize=False)
PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.5, 3  # ReduceLROnPlateau, as the seed


def choose(recipe: str, tuned: Recipe) -> Recipe:
    """The recipe a run trains with: the tuned one as configured, or the seed's, whatever the knobs say."""
    return SEED if recipe == "seed" else tuned
