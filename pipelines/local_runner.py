"""The local runner: walks the DAG on this machine, each step in its own process, trainings in parallel.

A finished step is reused when its key — its resolved arguments, which include the fingerprint of the code it runs
(`pipelines/fingerprint.py`), and for the dataset step a fingerprint of the data folder — is unchanged; downstream
arguments carry the dataset hash.
A failed step stops the run: what finished stays, and the next run resumes from the failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from brain_tumor.data import folder_fingerprint
from brain_tumor.external import folders
from brain_tumor.errors import UserError
from steps.tracking import server_configured

from .config import PipelineConfig
from .dag import REFERENCE, Node, data_layout, expand
from .fingerprint import REPO_ROOT


class StepFailed(UserError):
    exit_code = 1


@dataclass
class StepRun:
    name: str
    status: str  # "ran", "reused", "failed", "not run"
    seconds: float = 0.0  # the step function's own time (reused: the time it took when it ran)
    wall_seconds: float = 0.0  # the step's process, start to exit (0 when reused)
    log: str = ""
    exit_code: int | None = None


def resolve(value, parameters: dict, results: dict):
    """Replace a `${pipeline.X}` or `${STEP.KEY}` reference by its value."""
    if not isinstance(value, str):
        return value
    match = REFERENCE.fullmatch(value)
    if not match:
        return value
    scope, key = match.groups()
    return parameters[key] if scope == "pipeline" else results[scope][key]


def step_key(node: Node, kwargs: dict, config: PipelineConfig) -> str:
    """What decides reuse: the function and its resolved arguments (their `code` is the fingerprint of the code the
    step runs) and, for the dataset step, the data folder itself."""
    material = {"function": node.function, "kwargs": kwargs}
    if node.name == "register_dataset" and not config.dataset_id:  # its input is the data folder itself
        material["data"] = folder_fingerprint(data_layout(config))
    elif node.name == "register_dataset" and "/" in config.dataset_id:
        material["data"] = time.time()  # PROJECT/NAME means "the latest version": never assume it unchanged
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _paths(value, run_dir: str):
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths(v, run_dir)]
    if isinstance(value, list):
        return [p for v in value for p in _paths(v, run_dir)]
    return [value] if isinstance(value, str) and value.startswith(run_dir) else []


def reusable(step_dir: Path, key: str, run_dir: str, force: bool) -> dict | None:
    """The saved result of a step that finished with this key and whose files are all still there (never with
    `force`)."""
    if force:
        return None
    try:
        call = json.loads((step_dir / "call.json").read_text())
        saved = json.loads((step_dir / "result.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if call.get("key") != key or not all(Path(p).exists() for p in _paths(saved["result"], run_dir)):
        return None
    return saved


def detect_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else those `nvidia-smi -L` lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def log_tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n").splitlines() if path.exists() else []
    return "\n".join("    " + line for line in [t for t in text if t.strip()][-lines:])


def run_pipeline(config: PipelineConfig, quiet: bool = False) -> list[StepRun]:
    """Run the whole DAG; returns what each step did. Raises StepFailed naming the first failed step."""
    say = (lambda *a: None) if quiet else print
    run_dir = Path(config.run_dir).resolve()
    # Local runs train wherever they run: the GPU requirement is for agents on a GPU queue.
    config = config.replace(run_dir=str(run_dir), allow_cpu=True)
    parameters = config.values()
    models = config.model_names()
    if not config.dataset_id:
        data_layout(config)  # a bad data folder stops here, before any step
    folders(config.external_dir)  # so does a missing external folder
    nodes = expand(models)
    offline = not server_configured()
    if not offline:  # steps here, tracking on the server: fail now, clearly, rather than in every step
        from .server import check_server

        check_server()
    gpus = detect_gpus()
    max_parallel = config.max_parallel or max(1, len(gpus))
    (run_dir / "steps").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    if offline:  # the offline sessions land in the run folder, ready for `clearml-task --import-offline-session`
        env["CLEARML_CACHE_DIR"] = str(run_dir / "clearml")
    say(f"Pipeline: {len(nodes)} steps, models {', '.join(models)}, ClearML "
        f"{'offline (no server configured)' if offline else 'server'}, up to {max_parallel} training(s) at once"
        + (f" on GPUs {', '.join(gpus)}" if gpus else " on the CPU"))

    results: dict[str, dict] = {}
    runs = {node.name: StepRun(node.name, "not run") for node in nodes}
    running: dict[str, tuple[subprocess.Popen, float, str | None, object]] = {}
    failed: list[str] = []
    pending = list(nodes)
    while running or (pending and not failed):
        for node in [n for n in pending if all(p in results for p in n.parents)] if not failed else []:
            training = node.queue == "gpu"
            if training and sum(1 for n in running if n.startswith("train_")) >= max_parallel:
                continue
            pending.remove(node)
            kwargs = {key: resolve(value, parameters, results) for key, value in node.kwargs.items()}
            key = step_key(node, kwargs, config)
            step_dir = run_dir / "steps" / node.name
            saved = reusable(step_dir, key, str(run_dir), config.force)
            if saved is not None:
                results[node.name] = saved["result"]
                runs[node.name] = StepRun(node.name, "reused", saved["seconds"], 0.0, str(step_dir / "log.txt"))
                say(f"  reused   {node.name} (same code, inputs and data)")
                continue
            step_dir.mkdir(parents=True, exist_ok=True)
            (step_dir / "result.json").unlink(missing_ok=True)
            (step_dir / "call.json").write_text(json.dumps(
                {"name": node.name, "function": node.function, "kwargs": kwargs, "offline": offline, "key": key,
                 "output_uri": None if offline else config.output_uri or True},
                indent=2, default=str))
            step_env = dict(env)
            gpu = None
            if training and gpus:
                used = {g for _, _, g, _ in running.values()}
                gpu = next(g for g in gpus if g not in used)
                step_env["CUDA_VISIBLE_DEVICES"] = gpu
            log = open(step_dir / "log.txt", "w")
            process = subprocess.Popen([sys.executable, "-m", "pipelines.step_process", str(step_dir)],
                                       stdout=log, stderr=subprocess.STDOUT, env=step_env, cwd=os.getcwd())
            running[node.name] = (process, time.perf_counter(), gpu, log)
            say(f"  started  {node.name}" + (f" on GPU {gpu}" if gpu is not None else "")
                + f" (log: {step_dir / 'log.txt'})")
        for name, (process, started, _, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
            step_dir = run_dir / "steps" / name
            wall = time.perf_counter() - started
            if process.returncode == 0:
                saved = json.loads((step_dir / "result.json").read_text())
                results[name] = saved["result"]
                runs[name] = StepRun(name, "ran", saved["seconds"], wall, str(step_dir / "log.txt"))
                say(f"  finished {name} in {wall:.0f} s")
            else:
                runs[name] = StepRun(name, "failed", 0.0, wall, str(step_dir / "log.txt"), process.returncode)
                failed.append(name)
                say(f"  FAILED   {name} ({exit_reason(process.returncode)})")
        if running:
            time.sleep(0.05)

    (run_dir / "run.json").write_text(json.dumps(
        {"parameters": parameters, "steps": [vars(r) for r in runs.values()]}, indent=2, default=str))
    if failed:
        name = failed[0]
        log = run_dir / "steps" / name / "log.txt"
        kept = [r.name for r in runs.values() if r.status in ("ran", "reused")]
        not_run = [r.name for r in runs.values() if r.status == "not run"]
        raise StepFailed(
            f"step {name} failed ({exit_reason(runs[name].exit_code)}); its log: {log}\n"
            f"{log_tail(log)}\n"
            f"Kept: {', '.join(kept) or 'nothing'}. Not run: {', '.join(not_run) or 'nothing'}. "
            f"Fix the cause and run the same command again: finished steps are reused.")
    from .summary import write_summary

    write_summary(run_dir, config, results, list(runs.values()), offline)
    return list(runs.values())


def exit_reason(returncode) -> str:
    if returncode is None:
        return "unknown"
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return {1: "exit code 1: an unexpected error, traceback in the log",
            2: "exit code 2: a problem with the input"}.get(returncode, f"exit code {returncode}")
