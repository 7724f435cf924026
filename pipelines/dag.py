"""The pipeline, declared once: its steps, their parents and how each step's arguments are wired.

    register_dataset → class_weights → train_<model> (one per model, in parallel) → evaluate → select_champion

Argument values are literals or references in ClearML's syntax: `${pipeline.NAME}` for a pipeline parameter
(`pipelines/config.py`) and `${STEP.KEY}` for the KEY of an upstream step's result. A step declared `per_model`
becomes one node per model (`{model}` in its name and arguments is replaced); a non-per-model argument named with
`{model}` becomes one argument per model. Both runners execute this declaration: the local runner
(`pipelines/local_runner.py`) and ClearML's PipelineController (`pipelines/clearml_pipeline.py`), each running every
step through `pipelines/executor.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from brain_tumor import __version__
from brain_tumor.model_specs import get_spec
from brain_tumor.recipe import Recipe

from .fingerprint import code_fingerprint

REFERENCE = re.compile(r"\$\{(\w+)\.(\w+)\}")
FILES = "files"  # every step's extra result: its run-folder files, shared through ClearML when steps run apart


@dataclass(frozen=True)
class StepDecl:
    name: str  # "train_{model}" for a per-model step
    function: str  # "module:function"
    parents: tuple[str, ...]
    kwargs: dict = field(default_factory=dict)
    returns: tuple[str, ...] = ()  # the keys of the dict the function returns (ClearML: one artifact each)
    per_model: bool = False
    queue: str = "cpu"  # "cpu" for light steps, "gpu" for training
    only_for: dict = field(default_factory=dict)  # argument → the model family it concerns (per-model steps)
    needs_files: bool = False  # restores every upstream step's files into its run folder before it starts


DATASET = {"manifest": "${register_dataset.manifest}", "dataset_hash": "${register_dataset.dataset_hash}",
           "run_dir": "${pipeline.run_dir}"}
# Where the manifest is not on the step's machine (agents without a shared disk), the step re-derives the split from
# the dataset version: the same split, since it is deterministic for these arguments.
REDERIVE = {"dataset_id": "${register_dataset.dataset_id}", "val_fraction": "${pipeline.val_fraction}",
            "test_fraction": "${pipeline.test_fraction}", "seed": "${pipeline.seed}"}

# The recipe's knobs (brain_tumor.recipe.Recipe, one pipeline parameter each) and which recipe applies.
RECIPE = {name: f"${{pipeline.{name}}}" for name in ("recipe", *(f.name for f in fields(Recipe)))}

STEPS: tuple[StepDecl, ...] = (
    StepDecl("register_dataset", "steps.register_dataset:register_dataset", (), {
        "data": "${pipeline.data}", "train_dir": "${pipeline.train_dir}", "test_dir": "${pipeline.test_dir}",
        "image_size": "${pipeline.image_size}", "val_fraction": "${pipeline.val_fraction}",
        "test_fraction": "${pipeline.test_fraction}", "seed": "${pipeline.seed}", "run_dir": "${pipeline.run_dir}",
        "dataset_id": "${pipeline.dataset_id}", "project": "${pipeline.project}",
    }, ("manifest", "data_report", "dataset_hash", "dataset_id", "offline_record", "class_names", "counts",
        "skipped")),
    StepDecl("class_weights", "steps.class_weights:class_weights", ("register_dataset",),
             {**DATASET, "counts": "${register_dataset.counts}"}, ("class_weights", "dataset_hash")),
    StepDecl("baselines", "steps.baselines:baselines", ("register_dataset",), {
        **DATASET, **REDERIVE, "image_size": "${pipeline.image_size}",
    }, ("rows", "dataset_hash")),
    StepDecl("train_{model}", "steps.train_model:train_model", ("register_dataset", "class_weights"), {
        **DATASET, **REDERIVE, **RECIPE, "model": "{model}", "class_weights": "${class_weights.class_weights}",
        "image_size": "${pipeline.image_size}", "precision": "${pipeline.precision}",
        "weights": "${pipeline.weights}", "fine_tune_layers": "${pipeline.fine_tune_layers}",
        "augment_on": "${pipeline.augment_on}", "allow_cpu": "${pipeline.allow_cpu}",
    }, ("trained", "dataset_hash"), per_model=True, queue="gpu",
        only_for={"weights": "transfer", "fine_tune_layers": "transfer"}),
    StepDecl("evaluate", "steps.evaluate:evaluate", ("train_{model}",), {
        **DATASET, **REDERIVE, "trained_{model}": "${train_{model}.trained}",
        "external_dir": "${pipeline.external_dir}",
    }, ("rows", "model_refs", "dataset_hash")),
    StepDecl("ensemble", "steps.ensemble:ensemble", ("evaluate",), {
        **DATASET, **REDERIVE, "trained_{model}": "${train_{model}.trained}", "rows": "${evaluate.rows}",
        "model_refs": "${evaluate.model_refs}", "enabled": "${pipeline.ensemble}",
        "external_dir": "${pipeline.external_dir}",
    }, ("rows", "model_refs", "dataset_hash")),
    StepDecl("select_champion", "steps.select_champion:select_champion", ("ensemble", "baselines"), {
        "rows": "${ensemble.rows}", "model_refs": "${ensemble.model_refs}", "baseline_rows": "${baselines.rows}",
        "metric": "${pipeline.champion_metric}", "run_dir": "${pipeline.run_dir}",
        "project": "${pipeline.project}", "promote": "${pipeline.promote}",
        "dataset_hash": "${register_dataset.dataset_hash}", **REDERIVE,  # this run's images, for the promotion
    }, ("champion", "metric", "value", "why", "margin", "source", "path"), needs_files=True),
)


@dataclass(frozen=True)
class Node:
    """One concrete step of a run (per-model steps expanded). `kwargs` holds its declared arguments plus `code`, the
    fingerprint of the code it runs (so both runners' reuse follows code changes), and, for a step that needs its
    ancestors' files, one `files_<ancestor>` reference each."""

    name: str
    function: str
    parents: tuple[str, ...]
    kwargs: dict
    queue: str
    returns: tuple[str, ...]
    model: str | None = None


def _fill(value, model: str):
    return value.replace("{model}", model) if isinstance(value, str) else value


def expand(models: list[str], steps: tuple[StepDecl, ...] = STEPS) -> list[Node]:
    """The concrete DAG for a model list, in a valid execution order."""
    per_model = {s.name for s in steps if s.per_model}
    nodes: list[Node] = []
    for step in steps:
        parents = tuple(p for parent in step.parents
                        for p in ([_fill(parent, m) for m in models] if parent in per_model else [parent]))
        for model in (models if step.per_model else [None]):
            if model is not None:
                family = get_spec(model).family
                kwargs = {key: _fill(value, model) for key, value in step.kwargs.items()
                          if step.only_for.get(key, family) == family}
            else:
                kwargs = {}
                for key, value in step.kwargs.items():
                    names = [_fill(key, m) for m in models] if "{model}" in key else [key]
                    fills = [_fill(value, m) for m in models] if "{model}" in key else [value]
                    kwargs.update(zip(names, fills))
            if step.needs_files:
                kwargs.update({f"{FILES}_{n.name}": f"${{{n.name}.{FILES}}}" for n in nodes})
            kwargs["code"] = code_fingerprint(step.function)
            kwargs["version"] = __version__  # the launcher's package: a step on an image of another one says so
            nodes.append(Node(_fill(step.name, model) if model else step.name, step.function,
                              parents if model is None else tuple(_fill(p, model) for p in parents),
                              kwargs, step.queue, (*step.returns, FILES), model))
    return nodes


def bind(kwargs: dict, parameters: dict) -> dict:
    """The arguments with each `${pipeline.X}` replaced by parameter X's (validated) value; step references stay."""
    bound = {}
    for key, value in kwargs.items():
        match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
        bound[key] = parameters[match.group(2)] if match and match.group(1) == "pipeline" else value
    return bound


def declaration(node_name: str) -> tuple[StepDecl, str | None]:
    """The declared step a node name belongs to, and its model for a per-model step."""
    for step in STEPS:
        pattern = re.escape(step.name).replace(re.escape("{model}"), r"(\w+)")
        match = re.fullmatch(pattern, node_name)
        if match:
            return step, (match.group(1) if step.per_model else None)
    raise KeyError(f"no pipeline step is named {node_name!r}")


def data_layout(config):
    """The local data folder the configuration names (data, or train_dir and test_dir), validated."""
    from brain_tumor.data import find_layout

    return find_layout(config.data or None, config.train_dir or None, config.test_dir or None)
