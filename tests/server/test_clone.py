"""A run cloned and edited as the web UI does it (parameters as strings), enqueued on the services queue."""

from pipelines.dag import expand

CLONE = """
import sys, json
from clearml import Task
source, queue, edits = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
clone = Task.clone(source_task=source, name="edited in the web UI")
clone.update_parameters({f"Args/{k}": v for k, v in edits.items()})  # as the web UI edits: these alone
Task.enqueue(clone, queue_name=queue)
print("CLONE=" + clone.id)
"""


def clone_and_run(server, launched, edits: dict) -> dict:
    import json

    done = server.python(CLONE, launched["controller"]["id"], server.queues["services"], json.dumps(edits))
    assert done.returncode == 0, done.stdout[-3000:]
    clone_id = next(line[6:] for line in done.stdout.splitlines() if line.startswith("CLONE="))
    return server.api.wait(clone_id, timeout=900)


def test_an_edited_clone_runs_exactly_the_edited_models_with_the_edited_values(launched, server):
    edits = {"models": "cnn_b,cnn_c", "epochs": "2", "allow_cpu": "yes", "promote": "never",
             "dataset_id": f"{server.project}/brain-tumor-mri"}  # a PROJECT/NAME reference, as a user types it
    controller = clone_and_run(server, launched, edits)
    steps = server.api.steps_of(controller["id"])
    assert controller["status"] == "completed", server.api.console(controller["id"])[-3000:]
    assert set(steps) == {n.name for n in expand(["cnn_b", "cnn_c"])}
    for name in ("train_cnn_b", "train_cnn_c"):
        parameters = server.api.parameters(steps[name])
        assert parameters["kwargs/epochs"] == "2" and parameters["kwargs/allow_cpu"] == "True"
    for name in ("evaluate", "ensemble", "select_champion"):  # nothing of the removed model survives
        assert not any("cnn_a" in key for key in server.api.parameters(steps[name])), name
    registered = server.api.parameters(launched["steps"]["register_dataset"])["kwargs/dataset_id"]
    assert server.api.parameters(steps["register_dataset"])["kwargs/dataset_id"] == registered
    # The same data and arguments: the dataset step is the first run's, reused; the edited trainings ran anew.
    assert steps["register_dataset"]["id"] == launched["steps"]["register_dataset"]["id"]
    assert steps["train_cnn_b"]["id"] != launched["steps"]["train_cnn_b"]["id"]
    # promote=never: its champion is registered as a candidate; the champion tag stays with the first run's
    chosen = server.api.models(id=[server.api.parameters(steps["select_champion"])["return/source"]])[0]
    assert chosen["ready"] is True and "candidate" in chosen["tags"] and "champion" not in chosen["tags"]
    first = server.api.parameters(launched["steps"]["select_champion"])["return/source"]
    projects = server.api.project_ids(server.project)
    holders = server.api.models(project=projects, tags=["champion"], system_tags=["-archived"])
    assert [m["id"] for m in holders] == [first]
    assert "Promotion (never): " in server.api.console_with(steps["select_champion"]["id"], "Promotion (never): ")


def test_a_bad_edit_fails_the_clone_before_any_step_with_every_problem(launched, server):
    controller = clone_and_run(server, launched, {"models": "cnn_b,cnn_x", "epochs": "zero"})
    assert controller["status"] == "failed"
    console = server.api.console_with(controller["id"], "epochs: 'zero' is not an int")
    assert "cnn_x" in console and "epochs: 'zero' is not an int" in console, console[-3000:]
    assert server.api.tasks(parent=controller["id"]) == []  # no step task was created


def test_a_step_that_fails_on_bad_input_is_not_retried_and_fails_the_pipeline(launched, server):
    image = "brain-tumor-clearml:edited"  # and a new image: it reaches the steps rebuilt from stored definitions
    controller = clone_and_run(server, launched, {"dataset_id": "0" * 32, "docker_image": image})  # no such version
    assert controller["status"] == "failed"
    steps = server.api.steps_of(controller["id"])
    register = steps["register_dataset"]
    assert register["status"] == "failed"
    assert register["container"]["image"] == image
    missing = "Could not fetch ClearML dataset"
    assert missing in server.api.console_with(register["id"], missing)
    console = server.api.console_with(controller["id"], "The pipeline did not finish")
    assert "not retrying" in console and "Retrying" not in console, console[-3000:]
    assert "The pipeline did not finish: step register_dataset failed" in console
