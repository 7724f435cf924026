"""`brain-tumor launch` on a server: the controller on its agent, the steps on theirs, and what the server recorded."""

from pipelines.dag import expand

TRAININGS = {"train_cnn_a", "train_cnn_b"}


def test_every_node_of_a_launched_pipeline_completes(launched, server):
    controller, steps = launched["controller"], launched["steps"]
    assert controller["status"] == "completed", server.api.console(controller["id"])[-3000:]
    # The controller runs the image's module; no copy of the SDK's controller.py as "uncommitted changes"
    assert controller["script"]["entry_point"] == "-m pipelines.clearml_pipeline"
    assert not controller["script"].get("diff")
    assert set(steps) == {node.name for node in expand(["cnn_a", "cnn_b"])}
    assert {name: t["status"] for name, t in steps.items()} == {name: "completed" for name in steps}
    for name, task in steps.items():  # what travels between steps is results, never an artifact of the same name
        declared = set(next(n for n in expand(["cnn_a", "cnn_b"]) if n.name == name).returns)
        uploaded = {key for key, a in server.api.artifacts(task).items() if a.get("mode") != "input"}
        assert not {"manifest", "data_report", "files"} & uploaded - declared, (name, uploaded)
        for key in uploaded & declared:  # results are JSON, and not named as pickles
            assert not server.api.artifacts(task)[key]["uri"].endswith(".pkl"), (name, key)


def test_the_champion_is_published_tagged_and_the_report_is_on_the_pipeline(launched, server):
    projects = server.api.project_ids(server.project)
    champions = server.api.models(project=projects, tags=["champion"], system_tags=["-archived"])
    assert len(champions) == 1 and champions[0]["ready"] is True  # published
    decision = server.api.parameters(launched["steps"]["select_champion"])
    assert champions[0]["name"] == f"brain-tumor {decision['champion/model']}"
    assert champions[0]["id"] == decision["return/source"]
    assert "report" in server.api.artifacts(server.api.task(launched["controller"]["id"]))


def test_the_isolated_gpu_agent_trains_from_the_dataset_version_alone(launched, server):
    gpu_workers = {w["id"] for w in server.api.call("workers.get_all")["workers"]
                   if server.queues["gpu"] in {q["name"] for q in w.get("queues") or []}}
    for name in TRAININGS:
        task = launched["steps"][name]
        assert task["status"] == "completed"
        assert task["last_worker"] in gpu_workers, (name, task["last_worker"])
    light = launched["steps"]["evaluate"]
    assert light["last_worker"] not in gpu_workers


def test_steps_receive_the_controllers_validated_values(launched, server):
    train = server.api.parameters(launched["steps"]["train_cnn_b"])
    assert train["kwargs/epochs"] == "1" and train["kwargs/allow_cpu"] == "True"
    assert not any("${pipeline." in str(v) for v in train.values())
    dataset = server.api.parameters(launched["steps"]["register_dataset"])["kwargs/dataset_id"]
    assert len(dataset) == 32  # the version id launch registered, not a name


def test_the_pipeline_page_monitors_each_training_apart(launched, server):
    metrics = server.api.call("events.get_task_metrics", tasks=[launched["controller"]["id"]],
                              event_type="training_stats_scalar")["metrics"]
    shown = {m for entry in metrics for m in entry.get("metrics", [])}
    assert {"validation accuracy", "validation macro F1"} <= shown, shown
