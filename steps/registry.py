"""Decisions about what lives on the ClearML server, as pure functions (tested without a server), and the one
function that turns any model reference into a local file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from brain_tumor.errors import UserError

CHAMPION_TAG = "champion"


def dataset_version_action(content_hash: str, latest: dict | None) -> tuple[str, str | None]:
    """("reuse", id) when the latest version holds the same content, else ("create", parent id or None).
    `latest` is {"id": …, "content_hash": …} for the newest finalized version, or None."""
    if latest is not None and latest.get("content_hash") == content_hash:
        return "reuse", latest["id"]
    return "create", latest["id"] if latest else None


def champion_tag_changes(champion_id: str, tagged_ids: list[str]) -> dict[str, list[str]]:
    """Which models gain and which lose the champion tag, so exactly one model of the project carries it."""
    return {"add": [] if champion_id in tagged_ids else [champion_id],
            "remove": sorted(i for i in set(tagged_ids) if i != champion_id)}


def resolve_model(reference: str, project: str | None = None) -> Path:
    """A local .keras file for a model reference: a local path, a URL (s3://, gs://, https://, …; downloaded through
    ClearML's StorageManager cache) or a ClearML model id (through InputModel, from the configured server);
    'champion' is the champion of `project`."""
    reference = str(reference)
    if Path(reference).is_file():
        return Path(reference)
    if "://" in reference:
        from clearml import StorageManager

        local = StorageManager.get_local_copy(reference, extract_archive=False)
        if local is None:
            raise UserError(f"Could not download the model {reference}: check the URL and the storage credentials "
                            f"in clearml.conf.")
        return Path(local)
    if "/" in reference or reference.endswith(".keras"):
        raise UserError(f"Model file not found: {reference}.")
    from .tracking import server_configured

    if not server_configured():
        raise UserError(f"'{reference}' is neither a file nor a URL, and a ClearML model id needs a configured "
                        f"server: run `clearml-init` or set CLEARML_API_HOST, CLEARML_API_ACCESS_KEY and "
                        f"CLEARML_API_SECRET_KEY.")
    from clearml import InputModel

    if reference == CHAMPION_TAG:
        reference = champion_model_id(project)
    try:
        local = InputModel(model_id=reference).get_local_copy(raise_on_error=True)
    except Exception as error:  # unknown id, no server, no access: the SDK has no single error type for these
        raise UserError(f"Could not fetch ClearML model '{reference}' ({error}): check the id in the web UI's "
                        f"model registry and the server settings (clearml.conf or CLEARML_API_*).") from None
    return Path(local)


def publish_model(task, path: str, record: dict) -> str:
    """Register a training's best epoch in the model registry (framework, label enumeration, configuration, metrics
    as metadata), uploaded to the task's output_uri; returns the model id, the reference other steps resolve.
    Offline there is no registry: the file itself is the reference."""
    from clearml import OutputModel

    if task.is_offline():
        return str(Path(path).resolve())
    if not task.output_uri:  # without one the registry would hold a path inside this (throw-away) machine
        raise UserError("The training task has no output_uri: its model could not be uploaded. Set the pipeline "
                        "parameter output_uri, or sdk.development.default_output_uri in clearml.conf.")
    settings = ("recipe", "image_size", "crop", "precision", "weights", "fine_tune_layers", "members", "tta")
    output = OutputModel(task=task, name=f"brain-tumor {record['model']}", framework="Keras",
                         label_enumeration={name: i for i, name in enumerate(record["class_names"])},
                         config_dict={key: record[key] for key in settings if key in record},
                         tags=[record["model"]])
    output.update_weights(weights_filename=path, upload_uri=task.output_uri, auto_delete_file=False)
    for key in ("best_monitor", "best_epoch", "epochs_run", "dataset_hash"):
        if key in record:
            output.set_metadata(key, str(record[key]))
    output.set_metadata("params_total", str(record["params"]["total"]))
    return output.id


def model_projects(project: str | None = None) -> list[str]:
    """The projects this project's models are registered in: the pipeline's steps live in the hidden project
    `<PROJECT>/.pipelines/<pipeline>` (named here by the SDK's own PipelineController, so the two cannot disagree),
    and local runs tracked on a server in PROJECT."""
    from clearml.automation import PipelineController

    from .tracking import PIPELINE_NAME, PROJECT

    project = project or PROJECT
    pipeline = PipelineController._create_pipeline_project_args(PIPELINE_NAME, project)["project_name"]
    return list(dict.fromkeys([pipeline, project]))


def find_models(tag: str, only_published: bool = False, project: str | None = None) -> list[str]:
    """Ids of the models tagged `tag` in `model_projects()`, newest first. Hidden projects are searched too:
    `Model.query_models` cannot see them."""
    import re

    from clearml.backend_api.session.client import APIClient

    client = APIClient()
    projects = [p.id for name in model_projects(project)
                for p in client.projects.get_all(name=f"^{re.escape(name)}$", search_hidden=True, only_fields=["id"])]
    if not projects:
        return []
    models = client.models.get_all(project=projects, tags=[tag], ready=True if only_published else None,
                                   system_tags=["-archived"], order_by=["-created"], only_fields=["id"])
    return [m.id for m in models]


def champion_model_id(project: str | None = None) -> str:
    """The id of the project's model tagged champion (select_champion keeps exactly one)."""
    tagged = find_models(CHAMPION_TAG, only_published=True, project=project)
    if not tagged:
        raise UserError(f"No published model tagged '{CHAMPION_TAG}' in {' or '.join(model_projects(project))} on the "
                        f"server: run the pipeline there first (brain-tumor launch), or give a model id or file.")
    return tagged[0]


DATASET_NAME = "brain-tumor-mri"


def dataset_local_copy(dataset_id: str) -> Path:
    """The files of a ClearML dataset version on this machine (downloaded once into ClearML's cache). The reference is
    a version id, or "PROJECT/NAME" for that dataset's latest finalized version."""
    from clearml import Dataset

    try:
        return Path(Dataset.get(**_dataset_query(dataset_id)).get_local_copy())
    except Exception as error:  # unknown id, no server, no access
        raise UserError(f"Could not fetch ClearML dataset '{dataset_id}' ({error}): check the id in the web UI "
                        f"(Datasets) and the server settings.") from None


def latest_dataset_version(reference: str) -> str:
    """The id of the latest finalized version of dataset "PROJECT/NAME"."""
    from clearml import Dataset

    try:
        return Dataset.get(**_dataset_query(reference)).id
    except Exception as error:
        raise UserError(f"No finalized ClearML dataset '{reference}' ({error}): check PROJECT/NAME in the web UI "
                        f"(Datasets).") from None


def _dataset_query(reference: str) -> dict:
    project, _, name = reference.rpartition("/")
    return ({"dataset_project": project, "dataset_name": name, "only_completed": True} if project
            else {"dataset_id": reference})


def sync_version(dataset, layout) -> None:
    """Make a dataset version hold exactly the data folder: a child version starts with its parent's files, so files
    deleted from the folder are removed, new and changed ones added (the SDK's sync_folder)."""
    dataset.sync_folder(str(layout.train_dir), dataset_path="Training", verbose=False)
    if layout.test_dir is not None:
        dataset.sync_folder(str(layout.test_dir), dataset_path="Testing", verbose=False)
    else:
        dataset.remove_files("Testing/*", verbose=False)


def register_version(layout, content_hash: str, project: str, name: str = DATASET_NAME,
                     output_uri: str | None = None) -> str:
    """Upload a data folder as a new version of dataset `name` (child of the latest), unless the latest version
    already holds the same content, to `output_uri` (the pipeline's; empty: the files server). Returns the version's
    id. Needs a server."""
    from clearml import Dataset

    try:
        latest = Dataset.get(dataset_project=project, dataset_name=name, only_completed=True)
    except ValueError:  # no version yet
        latest = None
    latest_info = None if latest is None else {
        "id": latest.id, "content_hash": next((t[len("content:"):] for t in latest.tags if t.startswith("content:")),
                                              None)}
    action, dataset_id = dataset_version_action(content_hash, latest_info)
    if action == "reuse":
        print(f"Dataset unchanged: reusing version {dataset_id}")
        return dataset_id
    dataset = Dataset.create(dataset_project=project, dataset_name=name,
                             parent_datasets=[dataset_id] if dataset_id else None,
                             dataset_tags=[f"content:{content_hash}"])
    sync_version(dataset, layout)
    dataset.upload(output_url=output_uri or None)
    dataset.finalize()
    print(f"Dataset uploaded as version {dataset.id}" + (f" (child of {dataset_id})" if dataset_id else ""))
    return dataset.id


EXTERNAL = "dataset:"  # an external folder registered on the server: dataset:<version id>


def local_folders(external_dir: str) -> str:
    """The external folders on this machine: each `dataset:<id>` (registered by `launch`) as its local copy."""
    return ",".join(str(dataset_local_copy(p.strip()[len(EXTERNAL):])) if p.strip().startswith(EXTERNAL) else p
                    for p in external_dir.split(",") if p.strip())


def step_data(manifest: str, image_size: int, expected_hash: str, dataset_id: str, val_fraction: float,
              test_fraction: float, seed: int, run_dir: str, crop: bool = False):
    """The split images a step needs: from the manifest where this machine has it and the images it lists (local
    runs, shared disks), else re-derived from the dataset version's local copy (the split is deterministic) and
    checked against its hash. A run folder on a shared disk may hold another agent's manifest, listing that agent's
    copy of the dataset: this agent then splits its own copy into a folder of its own there, and leaves that
    manifest alone."""
    from brain_tumor.data import dataset_hash, find_layout
    from brain_tumor.experiment import load_prepared, prepare_data, read_manifest

    foreign = Path(manifest).is_file()  # and, unless it lists files this machine has, another agent's
    if foreign and (not dataset_id or all(Path(f).is_file() for f in read_manifest(manifest)[0]["file"])):
        return load_prepared(manifest, image_size, crop=crop)
    if not dataset_id:
        raise UserError(f"The manifest {manifest} is not on this machine and the run has no dataset id to fetch the "
                        f"images from: register the data on the server (brain-tumor launch) or share the run folder.")
    copy = dataset_local_copy(dataset_id)
    out = Path(run_dir) / "agents" / hashlib.sha256(str(copy).encode()).hexdigest()[:12] if foreign else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(find_layout(copy), image_size, val_fraction, test_fraction, seed, out, crop=crop)
    if dataset_hash(prepared.scanned) != expected_hash:
        raise UserError(f"Dataset {dataset_id} does not hold the registered content (hash {expected_hash[:12]}…).")
    return prepared
