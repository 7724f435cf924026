"""Decisions about what lives on the ClearML server, as pure functions (tested without a server), and the one
function that turns any model reference into a local file."""

from __future__ import annotations

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


def resolve_model(reference: str) -> Path:
    """A local .keras file for a model reference: a local path, a URL (s3://, gs://, https://, …; downloaded through
    ClearML's StorageManager cache) or a ClearML model id (through InputModel, from the configured server)."""
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

    try:
        local = InputModel(model_id=reference).get_local_copy(raise_on_error=True)
    except Exception as error:  # unknown id, no server, no access: the SDK has no single error type for these
        raise UserError(f"Could not fetch ClearML model '{reference}' ({error}): check the id in the web UI's "
                        f"model registry and the server settings (clearml.conf or CLEARML_API_*).") from None
    return Path(local)
