"""Before anything is sent to a ClearML server: is one configured, reachable and accepting our credentials? Each
failure is one clear message with the fix (never the credentials themselves)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from brain_tumor import __version__
from brain_tumor.errors import UserError
from steps.tracking import server_configured

SETUP = ("run `clearml-init` (it writes ~/clearml.conf; see clearml.conf.example) or set CLEARML_API_HOST, "
         "CLEARML_API_ACCESS_KEY and CLEARML_API_SECRET_KEY")


def api_host() -> str:
    from clearml.backend_api.session import Session

    return Session.get_api_server_host()


def connect():
    """(host, API client) for the configured server; UserError unless it answers and accepts the credentials."""
    if not server_configured():
        raise UserError(f"No ClearML server is configured: {SETUP}.")
    host = api_host()
    try:
        urllib.request.urlopen(f"{host}/debug.ping", timeout=10).close()
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"The ClearML server {host} is unreachable ({reason}). Check the address (CLEARML_API_HOST "
                        f"or api.api_server in clearml.conf) and that the server is up, e.g. "
                        f"`docker compose -f docker/docker-compose.yml up -d`.") from None
    try:
        from clearml.backend_api.session.client import APIClient

        client = APIClient()
        client.queues.get_all(only_fields=["id"])
    except Exception:  # the SDK raises several types for a refused login
        raise UserError(f"The ClearML server {host} refused the credentials: create new ones in the web UI "
                        f"(Settings → Workspace) and {SETUP}.") from None
    return host, client


def workers_by_queue(client, queues: tuple[str, ...]) -> dict[str, list[str]]:
    """The workers listening on each queue (none for a queue that does not exist)."""
    listening: dict[str, list[str]] = {}
    for worker in client.workers.get_all():
        for queue in worker.queues or []:
            listening.setdefault(queue.id, []).append(worker.id)
    found = {}
    for queue in queues:
        ids = client.queues.get_all(name=f"^{queue}$", only_fields=["id"])
        found[queue] = listening.get(ids[0].id, []) if ids else []
    return found


def start_worker_hint(queue: str) -> str:
    return (f"start one, e.g. `clearml-agent daemon --queue {queue} --create-queue --docker "
            f"brain-tumor-clearml:{__version__} --gpus 0` (docker/docker-compose.yml starts agents on 'services', "
            f"'gpu' and 'default')")


def check_server(queues: tuple[str, ...] = ()) -> str:
    """Raise UserError unless the server answers, accepts the credentials and has a worker on every queue.
    Returns its host."""
    host, client = connect()
    for queue, workers in workers_by_queue(client, queues).items():
        if not workers:
            raise UserError(f"No worker listens on queue '{queue}' at {host}: {start_worker_hint(queue)}.")
    return host


def import_offline_sessions(run_dir: Path) -> list[str]:
    """Upload every offline session of a local run to the configured server. Returns the new task ids."""
    sessions = sorted(Path(run_dir, "clearml", "offline").glob("*.zip"))
    if not sessions:
        raise UserError(f"No offline ClearML sessions in {Path(run_dir, 'clearml', 'offline')}: give a run folder "
                        f"written by 'brain-tumor run' or 'demo' while no server was configured.")
    host = check_server()
    from clearml import Task

    ids = []
    for session in sessions:
        ids.append(Task.import_offline_session(str(session)))
        print(f"Imported {session.name} into {host} as task {ids[-1]}")
    return ids
