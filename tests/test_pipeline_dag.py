"""The DAG declaration, asserted directly: nodes, parents, fan-out per model, parameter references."""

import re

import pytest

from brain_tumor.cli import build_parser
from brain_tumor.errors import UserError
from pipelines.dag import PARAMETERS, STEPS, expand, parse_models

REFERENCE = re.compile(r"\$\{(\w+)\.(\w+)\}")


def test_nodes_and_parents_for_two_models():
    nodes = {n.name: n for n in expand(["cnn_a", "resnet50"])}
    assert list(nodes) == ["register_dataset", "class_weights", "train_cnn_a", "train_resnet50", "evaluate",
                           "select_champion"]
    assert nodes["register_dataset"].parents == ()
    assert nodes["class_weights"].parents == ("register_dataset",)
    assert nodes["train_cnn_a"].parents == ("register_dataset", "class_weights")
    assert nodes["evaluate"].parents == ("train_cnn_a", "train_resnet50")
    assert nodes["select_champion"].parents == ("evaluate",)


def test_training_fans_out_per_model_on_the_gpu_queue():
    nodes = expand(["cnn_b", "cnn_c", "cnn_a"])
    trains = [n for n in nodes if n.name.startswith("train_")]
    assert [(n.name, n.model, n.kwargs["model"], n.queue) for n in trains] == [
        ("train_cnn_b", "cnn_b", "cnn_b", "gpu"), ("train_cnn_c", "cnn_c", "cnn_c", "gpu"),
        ("train_cnn_a", "cnn_a", "cnn_a", "gpu")]
    assert {n.queue for n in nodes if not n.name.startswith("train_")} == {"cpu"}
    assert [s.name for s in STEPS if s.per_model] == ["train_{model}"]


def test_cache_flags():
    assert {n.name for n in expand(["cnn_a"]) if n.cache} == {"register_dataset", "class_weights"}


def test_parameter_references():
    nodes = {n.name: n for n in expand(["cnn_a", "cnn_b"])}
    train = nodes["train_cnn_b"].kwargs
    assert train["epochs"] == "${pipeline.epochs}" and train["lr"] == "${pipeline.lr}"
    assert train["manifest"] == "${register_dataset.manifest}"
    assert train["dataset_hash"] == "${register_dataset.dataset_hash}"
    assert train["class_weights"] == "${class_weights.class_weights}"
    assert "resnet_weights" not in train  # so a new weights file re-trains ResNet50 alone
    assert nodes["train_cnn_a"].kwargs.get("resnet_weights") is None
    assert expand(["resnet50"])[2].kwargs["resnet_weights"] == "${pipeline.resnet_weights}"
    evaluate = nodes["evaluate"].kwargs
    assert evaluate["trained_cnn_a"] == "${train_cnn_a.trained}"
    assert evaluate["trained_cnn_b"] == "${train_cnn_b.trained}"
    assert nodes["select_champion"].kwargs["metric"] == "${pipeline.champion_metric}"


def test_every_reference_is_a_parameter_or_an_ancestor():
    nodes = expand(["cnn_a", "cnn_b", "cnn_c", "resnet50"])
    ancestors = {}
    for node in nodes:
        ancestors[node.name] = set(node.parents).union(*(ancestors[p] for p in node.parents))
        for value in node.kwargs.values():
            match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
            if match:
                scope, key = match.groups()
                assert scope in ancestors[node.name] or (scope == "pipeline" and key in PARAMETERS), (node.name, value)
        assert "dataset_hash" in node.kwargs or node.name in ("register_dataset", "select_champion")


def test_model_list_parsing():
    assert parse_models("cnn_a, resnet50,cnn_a") == ["cnn_a", "resnet50"]
    with pytest.raises(UserError, match="Unknown model 'vgg'"):
        parse_models("cnn_a,vgg")
    with pytest.raises(UserError, match="model list is empty"):
        parse_models(" , ")


def test_run_options_come_from_the_parameters():
    run = build_parser().parse_args(["run", "--data", "d"])
    for name, (default, _) in PARAMETERS.items():
        assert getattr(run, name) == (default if name != "data" else "d")
