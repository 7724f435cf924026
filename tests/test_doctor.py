"""`brain-tumor doctor`: the probe body run here (as an agent would run it), the rows and fixes it turns into, the
probe task as the SDK generates it, and the command against no server."""

import hashlib
import json
import os
import subprocess
import sys

from brain_tumor import __version__
from cli.main import main
from pipelines.doctor import format_table, probe_checks

PROBE = """
import json, sys
from clearml import Task
Task.set_offline(True)
Task._report_subprocess_enabled = False
Task.init(project_name="doctor", task_name="probe", auto_connect_frameworks=False)
from pipelines.doctor_probe import probe
print("REPORT=" + probe(sys.argv[1], sys.argv[2]))
"""


def run_probe(tmp_path, sample, sha256) -> dict:
    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "clearml"), "HOME": str(tmp_path)}
    env.pop("CLEARML_API_HOST", None)
    result = subprocess.run([sys.executable, "-c", PROBE, str(sample), sha256], capture_output=True, text=True,
                            env=env, timeout=300)
    line = next((x for x in result.stdout.splitlines() if x.startswith("REPORT=")), None)
    assert line, result.stdout + result.stderr
    return json.loads(line[len("REPORT="):])


def test_the_probe_reports_what_this_machine_offers(tmp_path):
    sample = tmp_path / "sample.txt"
    sample.write_bytes(b"sample")
    report = run_probe(tmp_path, sample, hashlib.sha256(b"sample").hexdigest())
    assert report["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert report["package"] == {"ok": True, "value": __version__}
    import tensorflow as tf

    assert report["tensorflow"]["value"] == {"tensorflow": tf.__version__,
                                             "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}
    assert report["download"]["ok"] and report["upload"]["ok"]
    rows = probe_checks("default", "completed", report, expect_gpu=False)
    assert all(row.ok for row in rows), format_table(rows)


def test_a_file_that_arrives_changed_fails_the_download_row(tmp_path):
    sample = tmp_path / "sample.txt"
    sample.write_bytes(b"sample")
    report = run_probe(tmp_path, sample, "0" * 64)
    assert not report["download"]["ok"] and "differs" in report["download"]["value"]
    row = next(r for r in probe_checks("gpu", "completed", report, False) if r.what.startswith("download"))
    assert not row.ok and "never localhost" in row.fix


def reported(**changes) -> dict:
    report = {"python": "3.11.9", "host": "agent-1", "package": {"ok": True, "value": __version__},
              "tensorflow": {"ok": True, "value": {"tensorflow": "2.21.0", "gpus": ["/physical_device:GPU:0"]}},
              "download": {"ok": True, "value": "http://files/x"}, "upload": {"ok": True, "value": "http://files/y"}}
    return report | changes


def test_each_failure_comes_with_its_fix():
    no_gpu = reported(tensorflow={"ok": True, "value": {"tensorflow": "2.21.0", "gpus": []}})
    row = next(r for r in probe_checks("gpu", "completed", no_gpu, expect_gpu=True) if r.what.startswith("Tensor"))
    assert not row.ok and "--gpus" in row.fix and "GPUs: none" in row.detail
    assert all(r.ok for r in probe_checks("default", "completed", no_gpu, expect_gpu=False))
    venv = reported(package={"ok": False, "value": "ModuleNotFoundError: No module named 'brain_tumor'"})
    row = next(r for r in probe_checks("gpu", "completed", venv, True) if r.what.startswith("package"))
    assert not row.ok and f"--docker brain-tumor-clearml:{__version__}" in row.fix
    old = reported(package={"ok": True, "value": "0.1.0"})
    row = next(r for r in probe_checks("gpu", "completed", old, True) if r.what.startswith("package"))
    assert not row.ok and "docker build" in row.fix
    (waiting,) = probe_checks("gpu", "queued", None, True)
    assert not waiting.ok and "no worker took the task" in waiting.fix
    (crashed,) = probe_checks("gpu", "failed", None, True, log_tail="docker: image not found")
    assert "image not found" in crashed.detail and "docker/Dockerfile" in crashed.fix
    table = format_table(probe_checks("gpu", "completed", no_gpu, True))
    assert "FAILED" in table and "fix:" in table


def test_the_probe_task_is_a_script_an_agent_can_run(tmp_path):
    script = """
import json, py_compile, sys
from clearml import Task
Task.set_offline(True)
from pipelines.config import PipelineConfig
from pipelines.doctor import create_probe
definition = create_probe("gpu", PipelineConfig(docker_image="brain-tumor-clearml:x"), ("u", "s"), "file:///tmp",
                          dry_run=True)
open(sys.argv[1], "w").write(definition["script"]["diff"])
py_compile.compile(sys.argv[1], doraise=True)
print("IMAGE=" + definition["container"]["image"] + " OUT=" + definition["output"]["destination"])
"""
    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "clearml"), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "probe.py")], capture_output=True,
                            text=True, env=env, timeout=120)
    assert "IMAGE=brain-tumor-clearml:x OUT=file:///tmp" in result.stdout, result.stderr
    assert "Import error" not in result.stdout + result.stderr


def test_doctor_without_a_server_says_how_to_configure_one(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CLEARML_API_HOST", raising=False)
    monkeypatch.setenv("CLEARML_CONFIG_FILE", str(tmp_path / "absent.conf"))
    assert main(["doctor"]) == 1
    out = capsys.readouterr()
    assert "No ClearML server is configured" in out.out and "clearml-init" in out.out
    assert "1 of 1 checks failed" in out.err


def test_doctor_against_a_server_that_does_not_answer(tmp_path, monkeypatch, capsys):
    from test_server_cli import closed_port

    host = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("CLEARML_API_HOST", host)
    assert main(["doctor"]) == 1
    out = capsys.readouterr()
    assert f"The ClearML server {host} is unreachable" in out.out and "docker compose" in out.out
    assert "Traceback" not in out.out + out.err
