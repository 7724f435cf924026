"""The pipeline, declared once: parameters, steps, parents and how each step's arguments are wired.

    register_dataset → class_weights → train_<model> (one per model, in parallel) → evaluate → select_champion

Argument values are literals or references in ClearML's syntax: `${pipeline.NAME}` for a pipeline parameter and
`${STEP.KEY}` for the KEY of an upstream step's result. A step declared `per_model` becomes one node per model
(`{model}` in its name and arguments is replaced); a non-per-model argument named with `{model}` becomes one argument
per model. The local runner (`pipelines/local_runner.py`) executes this declaration; so will ClearML's
PipelineController.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from brain_tumor.errors import UserError
from brain_tumor.model_specs import MODEL_SPECS, get_spec

# name → (default, description). The CLI's options and the controller's parameters both come from here.
PARAMETERS: dict[str, tuple[object, str]] = {
    "data": ("", "ROOT holding Training/<class>/ (and optionally Testing/<class>/), or a folder of class folders"),
    "train_dir": ("", "a folder of class folders to train on (instead of data)"),
    "test_dir": ("", "a folder of class folders to test on (default: Testing/ beside Training/, else carved)"),
    "dataset_id": ("", "a ClearML dataset version id, or PROJECT/NAME for its latest version, to use instead of a "
                       "local folder (needs a server)"),
    "models": (",".join(MODEL_SPECS), "comma-separated models to train: " + ", ".join(MODEL_SPECS)),
    "epochs": (15, "maximum epochs per model (early stopping may end sooner)"),
    "image_size": (224, "square image side in pixels"),
    "batch_size": (0, "batch size; 0 = each model's batch size in the seed's table (32; 64 for cnn_b)"),
    "lr": (1e-4, "Adam learning rate"),
    "val_fraction": (0.15, "validation share carved from Training"),
    "test_fraction": (0.15, "test share carved from Training when there is no test folder"),
    "seed": (42, "random seed for splits, initialisation and augmentation"),
    "resnet_weights": ("imagenet", "'imagenet' (download or Keras cache), a local weights file, or 'none'"),
    "augment_on": ("auto", "where augmentation runs: auto, model (GPU), tfdata (CPU) or none"),
    "champion_metric": ("val_macro_f1", "validation metric that picks the champion: val_macro_f1, val_accuracy, "
                                        "val_loss (never a test metric)"),
    "run_dir": ("runs/pipeline", "folder that receives the run's files"),
}


@dataclass(frozen=True)
class StepDecl:
    name: str  # "train_{model}" for a per-model step
    function: str  # "module:function"
    parents: tuple[str, ...]
    kwargs: dict = field(default_factory=dict)
    returns: tuple[str, ...] = ()  # the keys of the dict the function returns (ClearML: one artifact each)
    per_model: bool = False
    queue: str = "cpu"  # "cpu" for light steps, "gpu" for training
    cache: bool = False  # reuse across runs on a server (ClearML cache_executed_step)
    only_for: dict = field(default_factory=dict)  # argument → the one model it concerns (per-model steps)


DATASET = {"manifest": "${register_dataset.manifest}", "dataset_hash": "${register_dataset.dataset_hash}",
           "run_dir": "${pipeline.run_dir}"}
# Where the manifest is not on the step's machine (agents without a shared disk), the step re-derives the split from
# the dataset version: the same split, since it is deterministic for these arguments.
REDERIVE = {"dataset_id": "${register_dataset.dataset_id}", "val_fraction": "${pipeline.val_fraction}",
            "test_fraction": "${pipeline.test_fraction}", "seed": "${pipeline.seed}"}

STEPS: tuple[StepDecl, ...] = (
    StepDecl("register_dataset", "steps.register_dataset:register_dataset", (), {
        "data": "${pipeline.data}", "train_dir": "${pipeline.train_dir}", "test_dir": "${pipeline.test_dir}",
        "image_size": "${pipeline.image_size}", "val_fraction": "${pipeline.val_fraction}",
        "test_fraction": "${pipeline.test_fraction}", "seed": "${pipeline.seed}", "run_dir": "${pipeline.run_dir}",
        "dataset_id": "${pipeline.dataset_id}",
    }, ("manifest", "data_report", "dataset_hash", "dataset_id", "offline_record", "class_names", "counts", "skipped"),
        cache=True),
    StepDecl("class_weights", "steps.class_weights:class_weights", ("register_dataset",),
             {**DATASET, "counts": "${register_dataset.counts}"},
             ("class_weights", "dataset_hash"), cache=True),
    StepDecl("train_{model}", "steps.train_model:train_model", ("register_dataset", "class_weights"), {
        **DATASET, **REDERIVE, "model": "{model}", "class_weights": "${class_weights.class_weights}",
        "epochs": "${pipeline.epochs}", "image_size": "${pipeline.image_size}",
        "batch_size": "${pipeline.batch_size}", "lr": "${pipeline.lr}", "seed": "${pipeline.seed}",
        "resnet_weights": "${pipeline.resnet_weights}", "augment_on": "${pipeline.augment_on}",
    }, ("trained", "dataset_hash"), per_model=True, queue="gpu", only_for={"resnet_weights": "resnet50"}),
    StepDecl("evaluate", "steps.evaluate:evaluate", ("train_{model}",), {
        **DATASET, **REDERIVE, "trained_{model}": "${train_{model}.trained}",
    }, ("rows", "model_refs", "dataset_hash")),
    StepDecl("select_champion", "steps.select_champion:select_champion", ("evaluate",), {
        "rows": "${evaluate.rows}", "model_refs": "${evaluate.model_refs}",
        "metric": "${pipeline.champion_metric}", "run_dir": "${pipeline.run_dir}",
    }, ("champion", "metric", "value", "why", "source", "path")),
)


@dataclass(frozen=True)
class Node:
    """One concrete step of a run (per-model steps expanded)."""

    name: str
    function: str
    parents: tuple[str, ...]
    kwargs: dict
    queue: str
    cache: bool
    returns: tuple[str, ...] = ()
    model: str | None = None


def with_defaults(parameters: dict) -> dict:
    """Every pipeline parameter, the given values over the declared defaults."""
    return {name: default for name, (default, _) in PARAMETERS.items()} | parameters


def data_layout(parameters: dict):
    """The local data folder the parameters name (data, or train_dir and test_dir), validated."""
    from brain_tumor.data import find_layout

    return find_layout(parameters["data"] or None, parameters["train_dir"] or None, parameters["test_dir"] or None)


def parse_models(models: str | list[str]) -> list[str]:
    names = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    names = [m for m in names if m]
    for name in names:
        get_spec(name)  # a clear error for an unknown name
    if not names:
        raise UserError(f"The model list is empty; name one or more of: {', '.join(MODEL_SPECS)}.")
    return list(dict.fromkeys(names))


def _fill(value, model: str):
    return value.replace("{model}", model) if isinstance(value, str) else value


def expand(models: list[str], steps: tuple[StepDecl, ...] = STEPS) -> list[Node]:
    """The concrete DAG for a model list, in a valid execution order."""
    per_model = {s.name for s in steps if s.per_model}
    nodes = []
    for step in steps:
        parents = tuple(p for parent in step.parents
                        for p in ([_fill(parent, m) for m in models] if parent in per_model else [parent]))
        for model in (models if step.per_model else [None]):
            if model is not None:
                kwargs = {key: _fill(value, model) for key, value in step.kwargs.items()
                          if step.only_for.get(key, model) == model}
            else:
                kwargs = {}
                for key, value in step.kwargs.items():
                    names = [_fill(key, m) for m in models] if "{model}" in key else [key]
                    fills = [_fill(value, m) for m in models] if "{model}" in key else [value]
                    kwargs.update(zip(names, fills))
            nodes.append(Node(_fill(step.name, model) if model else step.name, step.function,
                              parents if model is None else tuple(_fill(p, model) for p in parents),
                              kwargs, step.queue, step.cache, step.returns, model))
    return nodes
