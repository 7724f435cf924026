"""The DAG declaration, asserted directly: nodes, parents, fan-out per model, parameter references."""

from pipelines.config import parameters
from pipelines.dag import REFERENCE, STEPS, declaration, expand
from pipelines.fingerprint import code_fingerprint

PARAMETERS = {f.name for f in parameters()}


def test_nodes_and_parents_for_two_models():
    nodes = {n.name: n for n in expand(["cnn_a", "resnet50"])}
    assert list(nodes) == ["register_dataset", "class_weights", "baselines", "train_cnn_a", "train_resnet50",
                           "evaluate", "ensemble", "select_champion"]
    assert nodes["register_dataset"].parents == ()
    assert nodes["class_weights"].parents == ("register_dataset",)
    assert nodes["baselines"].parents == ("register_dataset",)
    assert nodes["train_cnn_a"].parents == ("register_dataset", "class_weights")
    assert nodes["evaluate"].parents == ("train_cnn_a", "train_resnet50")
    assert nodes["ensemble"].parents == ("evaluate",)
    assert nodes["select_champion"].parents == ("ensemble", "baselines")


def test_training_fans_out_per_model_on_the_gpu_queue():
    nodes = expand(["cnn_b", "cnn_c", "cnn_a"])
    trains = [n for n in nodes if n.name.startswith("train_")]
    assert [(n.name, n.model, n.kwargs["model"], n.queue) for n in trains] == [
        ("train_cnn_b", "cnn_b", "cnn_b", "gpu"), ("train_cnn_c", "cnn_c", "cnn_c", "gpu"),
        ("train_cnn_a", "cnn_a", "cnn_a", "gpu")]
    assert {n.queue for n in nodes if not n.name.startswith("train_")} == {"cpu"}
    assert [s.name for s in STEPS if s.per_model] == ["train_{model}"]


def test_every_node_carries_the_fingerprint_of_its_code_and_returns_its_files():
    for node in expand(["cnn_a"]):
        assert node.kwargs["code"] == code_fingerprint(node.function)
        assert node.returns[-1] == "files"


def test_the_last_step_receives_every_upstream_steps_files():
    nodes = {n.name: n for n in expand(["cnn_a", "cnn_b"])}
    files = {k: v for k, v in nodes["select_champion"].kwargs.items() if k.startswith("files_")}
    assert files == {f"files_{name}": f"${{{name}.files}}" for name in
                     ("register_dataset", "class_weights", "baselines", "train_cnn_a", "train_cnn_b", "evaluate",
                      "ensemble")}
    assert not any(k.startswith("files_") for k in nodes["evaluate"].kwargs)


def test_a_node_name_finds_its_declaration():
    assert declaration("train_resnet50") == (STEPS[3], "resnet50")
    assert declaration("evaluate") == (STEPS[4], None)


def test_parameter_references():
    nodes = {n.name: n for n in expand(["cnn_a", "cnn_b"])}
    train = nodes["train_cnn_b"].kwargs
    assert train["epochs"] == "${pipeline.epochs}" and train["lr"] == "${pipeline.lr}"
    assert train["manifest"] == "${register_dataset.manifest}"
    assert train["dataset_hash"] == "${register_dataset.dataset_hash}"
    assert train["class_weights"] == "${class_weights.class_weights}"
    assert "weights" not in train and "fine_tune_layers" not in train  # a new weights file retrains transfer alone
    transfer = {n.name: n for n in expand(["resnet50", "efficientnetv2b0"])}
    for name in ("train_resnet50", "train_efficientnetv2b0"):
        assert transfer[name].kwargs["weights"] == "${pipeline.weights}"
        assert transfer[name].kwargs["fine_tune_layers"] == "${pipeline.fine_tune_layers}"
    assert train["recipe"] == "${pipeline.recipe}" and train["label_smoothing"] == "${pipeline.label_smoothing}"
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


def test_every_recipe_knob_is_a_pipeline_parameter_of_the_same_type():
    from dataclasses import fields

    from brain_tumor.recipe import Recipe
    from pipelines.config import PipelineConfig, type_name

    config = {f.name: f for f in parameters()}
    for f in fields(Recipe):
        assert type_name(config[f.name]) == (f.type if isinstance(f.type, str) else f.type.__name__), f.name
    tuned = PipelineConfig()
    assert Recipe(**{f.name: getattr(tuned, f.name) for f in fields(Recipe)})  # the defaults make a recipe


