"""The local runner: walks the DAG on this machine, each step in its own process, trainings in parallel.

A finished step is reused when its key — its resolved arguments, which include the fingerprint of the code it runs
(`pipelines/fingerprint.py`), and for the dataset step a fingerprint of the data folder — is unchanged; downstream
arguments carry the dataset hash.
A failed step stops the run: what finished stays, and the next run resumes from the failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from brain_tumor import files
from brain_tumor.data import folder_fingerprint
from brain_tumor.external import folders
from brain_tumor.errors import UserError
from steps.tracking import server_configured

from .config import PipelineConfig
from .dag import REFERENCE, Node, data_layout, expand
from .fingerprint import REPO_ROOT
from .lock import RunLock


class StepFailed(UserError):
    exit_code = 1


@dataclass
class StepRun:
    name: str
    status: str  # "ran", "reused", "failed", "not run"
    seconds: float = 0.0  # the step function's own time (reused: the time it took when it ran)
    wall_seconds: float = 0.0  # the step's process, start to exit (0 when reused)
    peak_mb: float = 0.0  # the step process's peak resident memory
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


def unreadable(path: Path) -> str | None:
    """Why a file a finished step made cannot be used again (None: it can)."""
    if not path.exists():
        return "is gone"
    if path.suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is not None or "brain_tumor.json" not in archive.namelist():
                    return "is damaged"
        except (OSError, zipfile.BadZipFile):
            return "is truncated or unreadable"
    return None


def reusable(step_dir: Path, key: str, run_dir: str, force: bool) -> dict | None:
    """The saved result of a step that finished with this key and whose files are all still there and whole (never
    with `force`). A damaged result or model makes the step run again, with a warning."""
    if force or not (step_dir / "result.json").is_file():
        return None
    try:
        call = json.loads((step_dir / "call.json").read_text())
        saved = json.loads((step_dir / "result.json").read_text())
        result, seconds = saved["result"], saved["seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        print(f"warning: {step_dir / 'result.json'} is unreadable (truncated?): running {step_dir.name} again",
              file=sys.stderr)
        return None
    if call.get("key") != key:
        return None
    for path in map(Path, _paths(result, run_dir)):
        reason = unreadable(path)
        if reason:
            print(f"warning: {path} {reason}: running {step_dir.name} again", file=sys.stderr)
            return None
    return {"result": result, "seconds": seconds, "peak_mb": saved.get("peak_mb", 0.0)}


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


class Interrupted(UserError):
    """Ctrl-C or SIGTERM: every step process was stopped; the same command resumes."""

    def __init__(self, signal_number: int):
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.exit_code = 128 + signal_number


def writable(run_dir: Path) -> None:
    """One clear message, before any step, when the run folder cannot be written (permissions, a file in its place,
    a full or read-only disk)."""
    try:
        (run_dir / "steps").mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise UserError(f"Cannot write to the run folder {run_dir} ({error.strerror or error}): choose another "
                        f"--out, or fix its permissions or free space.") from None


def stop(running: dict) -> None:
    """Stop every step process (each leads its own process group: its children go too), then wait for them."""
    for process, *_ in running.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process, *_ in running.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def interrupts():
    """SIGTERM raises Interrupted (as Ctrl-C raises KeyboardInterrupt) in the scheduler, for the time of a run."""
    def handler(number, frame):
        raise Interrupted(number)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_pipeline(config: PipelineConfig, quiet: bool = False, config_file: dict | None = None) -> list[StepRun]:
    """Run the whole DAG; returns what each step did. Raises StepFailed naming the first failed step, or Interrupted
    (with every step process stopped and the run recorded as interrupted). `config_file`: the configuration file
    the run was started from ({"path", "text"}), recorded in run.json."""
    say = (lambda *a: None) if quiet else print
    run_dir = Path(config.run_dir).resolve()
    # Local runs train wherever they run: the GPU requirement is for agents on a GPU queue.
    config = config.replace(run_dir=str(run_dir), allow_cpu=True)
    if not config.dataset_id:
        data_layout(config)  # a bad data folder stops here, before any step
    folders(config.external_dir)  # so does a missing external folder
    offline = not server_configured()
    if not offline:  # steps here, tracking on the server: fail now, clearly, rather than in every step
        from .server import check_server

        check_server()
    writable(run_dir)
    with RunLock(run_dir), interrupts():
        return _run(config, run_dir, offline, say, config_file)


def _run(config: PipelineConfig, run_dir: Path, offline: bool, say, config_file: dict | None = None
         ) -> list[StepRun]:
    parameters = config.values()
    started_from = {"config_file": config_file} if config_file else {}
    models = config.model_names()
    nodes = expand(models)
    gpus = detect_gpus()
    max_parallel = config.max_parallel or max(1, len(gpus))
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
    try:
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
                    runs[node.name] = StepRun(node.name, "reused", saved["seconds"], 0.0, saved.get("peak_mb", 0.0),
                                              str(step_dir / "log.txt"))
                    say(f"  reused   {node.name} (same code, inputs and data)")
                    continue
                step_dir.mkdir(parents=True, exist_ok=True)
                (step_dir / "result.json").unlink(missing_ok=True)
                files.write_text(step_dir / "call.json", json.dumps(
                    {"name": node.name, "function": node.function, "kwargs": kwargs, "offline": offline, "key": key,
                     "output_uri": None if offline else config.output_uri or True,
                     "project": config.project}, indent=2, default=str))
                step_env = dict(env)
                gpu = None
                if training and gpus:
                    used = {g for _, _, g, _ in running.values()}
                    gpu = next(g for g in gpus if g not in used)
                    step_env["CUDA_VISIBLE_DEVICES"] = gpu
                log = open(step_dir / "log.txt", "w")
                process = subprocess.Popen([sys.executable, "-m", "pipelines.step_process", str(step_dir)],
                                           stdout=log, stderr=subprocess.STDOUT, env=step_env, cwd=os.getcwd(),
                                           start_new_session=True)  # its own group: stopped with its children
                running[node.name] = (process, time.perf_counter(), gpu, log)
                runs[node.name].status = "running"
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
                    runs[name] = StepRun(name, "ran", saved["seconds"], wall, saved.get("peak_mb", 0.0),
                                         str(step_dir / "log.txt"))
                    say(f"  finished {name} in {wall:.0f} s")
                else:
                    runs[name] = StepRun(name, "failed", 0.0, wall, log=str(step_dir / "log.txt"),
                                         exit_code=process.returncode)
                    failed.append(name)
                    say(f"  FAILED   {name} ({exit_reason(process.returncode)})")
            if running:
                time.sleep(0.05)
    except BaseException as error:  # Ctrl-C, SIGTERM, or a fault in this loop: no step process outlives the run
        stop(running)
        for name in running:
            runs[name].status = "interrupted"
        if isinstance(error, (KeyboardInterrupt, Interrupted)):
            from .summary import write_interrupted

            interrupted = error if isinstance(error, Interrupted) else Interrupted(signal.SIGINT)
            files.write_text(run_dir / "run.json", json.dumps(
                {"parameters": parameters, **started_from, "interrupted": str(interrupted),
                 "steps": [vars(r) for r in runs.values()]},
                indent=2, default=str))
            write_interrupted(run_dir, list(runs.values()), str(interrupted))
            raise interrupted from None
        raise

    files.write_text(run_dir / "run.json", json.dumps(
        {"parameters": parameters, **started_from, "steps": [vars(r) for r in runs.values()]}, indent=2,
        default=str))
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
            2: "exit code 2: a problem with the input",
            3: "exit code 3: could not write (disk full or permissions)"}.get(returncode, f"exit code {returncode}")
