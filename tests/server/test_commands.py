"""The commands a user types against a server: doctor, predict with the project's champion, import-offline."""

import json
import subprocess
import sys

OFFLINE_SESSION = """
import sys
from clearml import Task
Task.set_offline(True)
task = Task.init(project_name=sys.argv[1], task_name="a local run's step", auto_connect_frameworks=False)
task.get_logger().report_scalar("accuracy", "validation", 0.75, 0)
task.close()
"""


def test_doctor_gives_every_row_its_verdict(launched, server):
    done = server.cli("doctor", "--project", server.project, "--allow-cpu", "--timeout", "400",
                      "--gpu-queue", server.queues["gpu"], "--cpu-queue", server.queues["default"], timeout=600)
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines() if "  ok  " in line
            or "  FAILED  " in line}
    assert done.returncode == 0, done.stdout[-4000:]  # a working server and agents: every check passes
    assert "All" in done.stdout and "checks passed" in done.stdout
    for queue in server.queues.values():  # a probe task ran on each queue and reported what it saw
        assert any(f"'{queue}'" in row and "  ok  " in row for row in rows.values()), (queue, done.stdout[-3000:])


def test_predict_serves_the_projects_champion(launched, server, server_data):
    image = sorted((server_data / "Testing").rglob("*.jpg"))[0]
    done = server.cli("predict", "champion", str(image), "--project", server.project, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    champion = server.api.parameters(launched["steps"]["select_champion"])["champion/model"]
    assert f"Model {champion} " in done.stdout and f"{image.name}: " in done.stdout


def test_import_offline_uploads_a_local_runs_sessions(server, tmp_path):
    run = tmp_path / "run"
    env = {k: v for k, v in server.env.items() if not k.startswith("CLEARML_")}
    made = subprocess.run([sys.executable, "-c", OFFLINE_SESSION, server.project], env={
        **env, "CLEARML_CACHE_DIR": str(run / "clearml")}, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    done = server.cli("import-offline", str(run), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    task_id = done.stdout.strip().splitlines()[-1].split()[-1]
    task = server.api.task(task_id)
    assert task["name"] == "a local run's step"
    assert json.dumps(task.get("last_metrics", {})).count("0.75") >= 1
