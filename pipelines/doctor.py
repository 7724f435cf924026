"""`brain-tumor doctor`: what works on the configured ClearML server and its agents, and the fix for what does not.

It checks the server and the credentials, the workers on each queue the pipeline uses, then enqueues a probe task
(`pipelines/doctor_probe.py`) on each queue, created the way pipeline steps are (from a function, in the project's
image): the probe reports Python, the package, TensorFlow and its GPUs, downloads a file this machine put on the
files server and uploads an artifact back. One table; a fix for every failed row.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from brain_tumor import __version__
from brain_tumor.errors import UserError

from .config import PipelineConfig
from .server import connect, start_worker_hint, workers_by_queue

FILES_FIX = ("agents must reach the files server at the address this machine uses: set api.files_server in "
             "clearml.conf (and CLEARML_HOST_IP for docker/docker-compose.yml) to the server host's name or IP, "
             "never localhost; for a bucket, give the agents its credentials")


class ChecksFailed(UserError):
    exit_code = 1


@dataclass
class Check:
    what: str
    ok: bool
    detail: str
    fix: str = ""


def probe_checks(queue: str, status: str, report: dict | None, expect_gpu: bool, log_tail: str = "") -> list[Check]:
    """The rows for one queue's probe: its task status and the report it returned (None if it returned none)."""
    name = f"probe on '{queue}'"
    if report is None:
        if status in ("queued", "created"):
            return [Check(name, False, f"not started ({status})", f"no worker took the task: check the workers on "
                                                                  f"'{queue}' in the web UI (Workers & Queues)")]
        if status == "in_progress":
            return [Check(name, False, "still running at the time limit", "the first start pulls the image: "
                                                                          "wait, or raise --timeout")]
        return [Check(name, False, f"task {status}: {log_tail}".strip(),
                      "the agent could not run the probe in the project's image: on the agent's host, check "
                      "`docker image inspect brain-tumor-clearml:<version>` (build it with docker/Dockerfile) and "
                      "the task's console log in the web UI")]
    rows = [Check(name, True, f"Python {report['python']} on {report['host']}")]
    package = report["package"]
    if not package["ok"]:
        rows.append(Check(f"package on '{queue}'", False, package["value"],
                          f"the agent does not run the project's image: start it with `--docker "
                          f"brain-tumor-clearml:{__version__}` (agents in virtual-environment mode are not "
                          f"supported)"))
    elif package["value"] != __version__:
        rows.append(Check(f"package on '{queue}'", False, f"{package['value']}, this checkout {__version__}",
                          f"build the image from this checkout: `docker build -f docker/Dockerfile -t "
                          f"brain-tumor-clearml:{__version__} .`"))
    else:
        rows.append(Check(f"package on '{queue}'", True, f"brain-tumor-clearml {package['value']}"))
    tf = report["tensorflow"]
    if not tf["ok"]:
        rows.append(Check(f"TensorFlow on '{queue}'", False, tf["value"], "rebuild the image (docker/Dockerfile)"))
    else:
        gpus = tf["value"]["gpus"]
        missing = expect_gpu and not gpus
        rows.append(Check(f"TensorFlow on '{queue}'", not missing,
                          f"{tf['value']['tensorflow']}, GPUs: {', '.join(gpus) or 'none'}",
                          "start the agent with `--gpus N` on a host with the NVIDIA driver and NVIDIA Container "
                          "Toolkit; check with `docker run --rm --gpus all brain-tumor-clearml:<version> python -c "
                          "\"import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))\"` (or set "
                          "allow_cpu to train on CPUs)" if missing else ""))
    for check, what in (("download", "download from the files server"), ("upload", "upload an artifact")):
        result = report[check]
        rows.append(Check(f"{what} on '{queue}'", result["ok"], result["value"], "" if result["ok"] else FILES_FIX))
    return rows


def format_table(checks: list[Check]) -> str:
    width = max(len(c.what) for c in checks)
    lines = [f"{'check'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
    for c in checks:
        lines.append(f"{c.what.ljust(width)}  {'ok' if c.ok else 'FAILED':6s}  {c.detail}")
        if c.fix:
            lines.append(f"{' ' * width}  {'fix:':6s}  {c.fix}")
    return "\n".join(lines)


def put_sample(output_uri: str, project: str) -> tuple[str, str]:
    """A small file on the files server (or bucket), as this machine uploads it: (its address, its SHA-256)."""
    from clearml import StorageManager

    content = f"brain-tumor doctor {uuid.uuid4().hex}\n".encode()
    local = Path(tempfile.mkdtemp()) / "doctor-sample.txt"
    local.write_bytes(content)
    url = StorageManager.upload_file(str(local), f"{output_uri.rstrip('/')}/{project}/doctor/{local.name}")
    return url, hashlib.sha256(content).hexdigest()


def create_probe(queue: str, config: PipelineConfig, sample: tuple[str, str], output_uri: str, dry_run=False):
    """The probe task, created from its function as PipelineController creates a function step: the definition
    (`dry_run`: only that), then a task made from it, in the project's image. (Asked to create the task itself, the
    SDK's create_task_from_function fails with a function's arguments: it iterates their dict without `.items()`,
    clearml 2.1.12 populate.py.)"""
    from clearml import Task
    from clearml.backend_interface.task.populate import CreateFromFunction

    from .doctor_probe import probe

    name = f"doctor probe ({queue})"
    definition = CreateFromFunction.create_task_from_function(
        a_function=probe, function_kwargs={"sample_url": sample[0], "sample_sha256": sample[1]},
        function_return=["report"], project_name=config.project, task_name=name, task_type="qc",
        docker=config.docker_image, output_uri=output_uri, auto_connect_frameworks=False,
        auto_connect_arg_parser=False, dry_run=True)
    if dry_run:
        return definition
    task = Task.create(project_name=config.project, task_name=name, task_type="qc")
    task.update_task(definition)
    return task


def probe_result(task) -> tuple[str, dict | None, str]:
    """(status, the probe's report or None, the last lines of its log)."""
    task.reload()
    status = str(task.get_status())
    text = (task.get_parameters() or {}).get("return/report")
    tail = ""
    if status in ("failed", "stopped"):
        tail = " ".join(str(line) for line in (task.get_reported_console_output(number_of_reports=1) or []))[-300:]
    return status, json.loads(text) if text else None, tail


def run_doctor(config: PipelineConfig, controller_queue: str = "services", timeout: float = 600,
               probes: bool = True) -> list[Check]:
    checks = []
    try:
        host, client = connect()
    except UserError as error:
        return [Check("server", False, str(error).split(": ", 1)[0], str(error))]
    checks.append(Check("server and credentials", True, host))
    queues = tuple(dict.fromkeys((config.gpu_queue, config.cpu_queue, controller_queue)))
    workers = workers_by_queue(client, queues)
    for queue in queues:
        checks.append(Check(f"workers on '{queue}'", bool(workers[queue]), ", ".join(workers[queue]) or "none",
                            "" if workers[queue] else start_worker_hint(queue)))
    if not probes:
        return checks
    from clearml.backend_api.session import Session

    output_uri = config.output_uri or Session.get_files_server_host()
    try:
        sample = put_sample(output_uri, config.project)
    except Exception as error:  # the SDK raises several types for refused or unreachable storage
        return [*checks, Check("upload from this machine", False, f"{output_uri}: {error}"[:300], FILES_FIX)]
    checks.append(Check("upload from this machine", True, sample[0]))
    from clearml import Task

    tasks = {queue: create_probe(queue, config, sample, output_uri) for queue in queues if workers[queue]}
    for queue, task in tasks.items():
        Task.enqueue(task, queue_name=queue)
    deadline = time.monotonic() + timeout
    results = {}
    while tasks.keys() - results.keys() and time.monotonic() < deadline:
        for queue in tasks.keys() - results.keys():
            status, report, tail = probe_result(tasks[queue])
            if status in ("completed", "failed", "stopped", "closed", "published"):
                results[queue] = (status, report, tail)
        time.sleep(5)
    for queue, task in tasks.items():
        status, report, tail = results.get(queue) or probe_result(task)
        checks += probe_checks(queue, status, report, expect_gpu=queue == config.gpu_queue and not config.allow_cpu,
                               log_tail=tail)
        if queue not in results:
            task.mark_stopped(force=True)
    return checks
