"""The pipeline's parameters, declared once: each one's name, type, default and description.

The command line's options (`cli/options.py`), the ClearML controller's parameters (which the web UI shows and a
cloned run edits, `pipelines/clearml_pipeline.py`) and the checks made before any step runs all come from this class;
each step's arguments are coerced to these types where the step starts (`pipelines/executor.py`), whatever form
they arrived in (the web UI stores every value as a string).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from brain_tumor import __version__
from brain_tumor.errors import UserError
from brain_tumor.model_specs import MODEL_SPECS
from brain_tumor.promotion import POLICIES
from brain_tumor.recipe import (AUGMENT_PLACES, AUGMENTATIONS, MONITORS, OPTIMIZERS, PRECISIONS, RECIPES,
                                SCHEDULES)
from brain_tumor.selection import CHAMPION_METRICS
from steps.tracking import PROJECT as DEFAULT_PROJECT

# Where a parameter is used: "both" runners, "server" (the ClearML controller and `launch` only) or "local" (the local
# runner only).
BOTH, SERVER, LOCAL = "both", "server", "local"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def param(default, help: str, *, choices: tuple = (), scope: str = BOTH, flag: str = "", search: tuple = ()):
    """A parameter: its default, a one-line description, the values allowed, where it is used, its CLI flag
    (default: --name-with-dashes) and, for a parameter `brain-tumor tune` searches, its search range:
    ("log", low, high), ("uniform", low, high), ("int", low, high) or ("choice", (value, ...))
    (`pipelines/search_space.py` reads it)."""
    return field(default=default, metadata={"help": help, "choices": tuple(choices), "scope": scope, "flag": flag,
                                            "search": tuple(search)})


@dataclass(frozen=True)
class PipelineConfig:
    """Every pipeline parameter, typed. Build it with `from_values` (coerces and validates), never field by field."""

    data: str = param("", "ROOT holding Training/<class>/ (and optionally Testing/<class>/), or a folder of class "
                          "folders")
    train_dir: str = param("", "a folder of class folders to train on (instead of data)")
    test_dir: str = param("", "a folder of class folders to test on; empty: Testing/ beside Training/, else a split "
                              "carved from Training")
    dataset_id: str = param("", "a ClearML dataset version id, or PROJECT/NAME for its latest version, instead of a "
                                "local folder (needs a server)")
    models: str = param(",".join(MODEL_SPECS), "comma-separated models to train: " + ", ".join(MODEL_SPECS))
    image_size: int = param(128, "square image side in pixels (32 to 1024)")
    val_fraction: float = param(0.15, "validation share carved from Training")
    test_fraction: float = param(0.15, "test share carved from Training when there is no test folder")
    seed: int = param(42, "random seed for splits, initialisation and augmentation")
    recipe: str = param("tuned", "tuned: train with the parameters below; seed: the notebook's recipe exactly "
                                 "(Adam 1e-4, its eight augmentations, plateau decay, val_loss, 15 epochs)",
                        choices=RECIPES)
    optimizer: str = param("adamw", "optimizer (adamw: Adam with decoupled weight decay)", choices=OPTIMIZERS,
                           search=("choice", OPTIMIZERS))
    lr: float = param(1e-3, "learning rate (the peak, after warm-up)", search=("log", 1e-5, 1e-2))
    weight_decay: float = param(1e-4, "AdamW's weight decay", search=("log", 1e-6, 1e-2))
    schedule: str = param("cosine", "learning-rate schedule; cosine: linear warm-up, then cosine decay to 0; plateau: "
                                    "halve after 3 epochs without progress", choices=SCHEDULES,
                          search=("choice", SCHEDULES))
    warmup_epochs: int = param(1, "epochs of linear warm-up (cosine schedule; at most all but the last step)",
                               search=("int", 0, 3))
    augment: str = param("none", "augmentation of training batches; seed: the notebook's eight transforms; light: "
                                 "flip, rotation ±10°, zoom ±10 %, brightness ±10 %; none scored best on validation",
                         choices=AUGMENTATIONS, search=("choice", AUGMENTATIONS))
    label_smoothing: float = param(0.1, "label smoothing of the cross-entropy (0 to 0.5)",
                                   search=("uniform", 0.0, 0.2))
    epochs: int = param(20, "maximum epochs per model (early stopping may end sooner)", search=("int", 5, 30))
    patience: int = param(6, "epochs without progress on `monitor` before early stopping", search=("int", 2, 10))
    monitor: str = param("val_macro_f1", "the validation metric early stopping watches; its best epoch is kept",
                         choices=MONITORS)
    batch_size: int = param(0, "batch size; 0 = each model's batch size in the seed's table (32; 64 for cnn_b)",
                            search=("choice", (16, 32, 64)))
    crop: bool = param(False, "crop each slice to the head's bounding box before resizing (scale and framing match "
                              "across sources)", search=("choice", (False, True)))
    normalize: bool = param(False, "standardise each image's intensities inside the custom CNNs",
                             search=("choice", (False, True)))
    precision: str = param("auto", "arithmetic; auto: float16 on a GPU, bfloat16 on a CPU with bfloat16 "
                                   "instructions, else float32", choices=PRECISIONS)
    weights: str = param("imagenet", "transfer models' backbone weights: 'imagenet' (download or Keras cache), a "
                                     "weights file or a folder holding the Keras files, or 'none'")
    fine_tune_layers: int = param(0, "transfer models: after the frozen stage, train this many top layers of the "
                                     "backbone at a tenth of the learning rate (0 = off)")
    augment_on: str = param("auto", "where augmentation runs; auto: in the model on a GPU, in tf.data on a CPU",
                            choices=AUGMENT_PLACES)
    ensemble: bool = param(True, "build a soft-vote ensemble of the trained models (members and weights chosen on "
                                 "validation) that competes for champion")
    external_dir: str = param("", "labelled folders of class folders (comma-separated) every model is evaluated on; "
                                  "their classes may be a subset of training's")
    champion_metric: str = param("val_macro_f1", "validation metric that picks the champion (never a test metric)",
                                 choices=tuple(CHAMPION_METRICS))
    promote: str = param("if-better", "on a server, whether the champion takes the project's champion tag; if-better: "
                                      "unless distinguishably worse than the holder on images neither trained on",
                         choices=POLICIES)
    run_dir: str = param("runs/pipeline", "folder that receives the run's files (on an agent: a scratch folder)",
                         flag="--out")
    force: bool = param(False, "re-run every step, even one that already ran with the same code, arguments and data")
    max_parallel: int = param(0, "trainings at once; 0 = one per GPU, or 1 on a CPU", scope=LOCAL)
    gpu_queue: str = param("gpu", "ClearML queue of the training steps (GPU agents)", scope=SERVER)
    cpu_queue: str = param("default", "ClearML queue of the light steps", scope=SERVER)
    docker_image: str = param(f"brain-tumor-clearml:{__version__}", "the image the controller and every step run in "
                              "on agents (docker/Dockerfile; its tag is the package version)", scope=SERVER)
    output_uri: str = param("", "with a ClearML server, where models and artifacts are uploaded: empty = its files "
                                "server, or s3://…, gs://…, azure://…")
    stale_minutes: float = param(10.0, "minutes without a report from a running step (its agent's heartbeat, a log "
                                       "line, a scalar) before it is failed and retried on another agent",
                                 scope=SERVER)
    project: str = param(DEFAULT_PROJECT, "ClearML project of the run: its pipeline, steps, dataset versions and "
                                          "models (a team, or a test run, keeps its own)")
    allow_cpu: bool = param(False, "let a training step on an agent without a GPU train on its CPU (slow) instead "
                                   "of failing", scope=SERVER)

    @classmethod
    def from_values(cls, values: dict | None = None, **overrides) -> PipelineConfig:
        """The configuration from any mix of typed values and strings (CLI, web UI, JSON), checked whole: every
        problem is listed in one UserError."""
        values = {**(values or {}), **overrides}
        known = {f.name: f for f in fields(cls)}
        problems = [f"unknown parameter '{name}'" for name in values if name not in known]
        typed, unreadable = {}, set()
        for name, value in values.items():
            if name in known:
                try:
                    typed[name] = coerce(known[name], value)
                except ValueError as error:
                    problems.append(str(error))
                    unreadable.add(name)
        config = cls(**typed)  # defaults stand in for unreadable values, so that every other problem shows too
        problems += [p for p in config.problems() if p.split(":")[0] not in unreadable]
        if problems:
            raise UserError("Invalid pipeline parameters:\n  - " + "\n  - ".join(problems))
        return config

    def problems(self) -> list[str]:
        """What is wrong with these values, in words a user can act on (empty: nothing)."""
        found = []
        names = [m.strip() for m in self.models.split(",") if m.strip()]
        unknown = [m for m in names if m not in MODEL_SPECS]
        if unknown:
            found.append(f"models: unknown model(s) {', '.join(repr(m) for m in unknown)}; choose from "
                         f"{', '.join(MODEL_SPECS)}")
        elif not names:
            found.append(f"models: the model list is empty; name one or more of {', '.join(MODEL_SPECS)}")
        for f in fields(self):
            choices = f.metadata["choices"]
            if choices and getattr(self, f.name) not in choices:
                found.append(f"{f.name}: '{getattr(self, f.name)}' is not one of {', '.join(choices)}")
        if self.epochs < 1:
            found.append(f"epochs: {self.epochs} (at least 1)")
        if not 32 <= self.image_size <= 1024:
            found.append(f"image_size: {self.image_size} (32 to 1024 pixels)")
        if self.batch_size < 0:
            found.append(f"batch_size: {self.batch_size} (0 for each model's own, or a positive size)")
        if not self.lr > 0:
            found.append(f"lr: {self.lr} (a positive learning rate, e.g. 0.0001)")
        if not 0 < self.val_fraction < 1:
            found.append(f"val_fraction: {self.val_fraction} (between 0 and 1)")
        if not 0 <= self.test_fraction < 1 or self.val_fraction + self.test_fraction >= 1:
            found.append(f"test_fraction: {self.test_fraction} (0 or more, and val_fraction + test_fraction below 1)")
        for name in ("weight_decay", "warmup_epochs", "fine_tune_layers"):
            if getattr(self, name) < 0:
                found.append(f"{name}: {getattr(self, name)} (0 or more)")
        if not 0 <= self.label_smoothing < 0.5:
            found.append(f"label_smoothing: {self.label_smoothing} (0 to 0.5)")
        if self.patience < 1:
            found.append(f"patience: {self.patience} (at least 1)")
        if self.max_parallel < 0:
            found.append(f"max_parallel: {self.max_parallel} (0 or more)")
        if not self.stale_minutes > 0:
            found.append(f"stale_minutes: {self.stale_minutes} (a positive number of minutes)")
        if len(self.project.strip()) < 3:
            found.append(f"project: '{self.project}' (a ClearML project name has 3 characters or more)")
        for name in ("gpu_queue", "cpu_queue", "docker_image"):
            if not getattr(self, name).strip():
                found.append(f"{name}: empty")
        return found

    def model_names(self) -> list[str]:
        return list(dict.fromkeys(m.strip() for m in self.models.split(",") if m.strip()))

    def replace(self, **changes) -> PipelineConfig:
        return PipelineConfig.from_values(self.values(), **changes)

    def values(self) -> dict:
        return dataclasses.asdict(self)


def parameters(scope: str | None = None) -> list[dataclasses.Field]:
    """The parameters in declaration order; with a scope, those used there ("local" or "server")."""
    return [f for f in fields(PipelineConfig) if scope is None or f.metadata["scope"] in (BOTH, scope)]


def type_name(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def coerce(f: dataclasses.Field, value):
    """`value` as the parameter's declared type; strings (as the web UI stores every value) are parsed."""
    return coerce_plain(f.name, type_name(f), value)


def coerce_plain(name: str, kind, value):
    """`value` as type `kind` ("bool", "int", "float", "str", or the type itself), named `name` in the error."""
    kind = kind if isinstance(kind, str) else kind.__name__
    text = value.strip() if isinstance(value, str) else value
    try:
        if kind == "bool":
            if isinstance(text, bool):
                return text
            if str(text).lower() in TRUE + FALSE:
                return str(text).lower() in TRUE
            raise ValueError
        if kind == "int":
            number = float(text) if isinstance(text, str) else text
            if isinstance(number, bool) or int(number) != number:
                raise ValueError
            return int(number)
        if kind == "float":
            if isinstance(text, bool):
                raise ValueError
            return float(text)
        return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not {'an' if kind == 'int' else 'a'} {kind}") from None
