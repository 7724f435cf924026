"""How the server tests start a pipeline run and read its id."""

from __future__ import annotations

from pathlib import Path

TINY = ("--image-size", "32", "--epochs", "1", "--allow-cpu")  # trainings of seconds on a CPU agent


def launch_args(server, data: Path, models: str, *extra: str) -> list[str]:
    """`brain-tumor launch` of `models` on `data`, tiny trainings, in the test run's project, on its queues."""
    return ["launch", "--data", str(data), "--models", models, *TINY, "--project", server.project,
            "--gpu-queue", server.queues["gpu"], "--cpu-queue", server.queues["default"], *extra]


def pipeline_id(output: str) -> str:
    """The controller task's id, from `launch`'s output ("Pipeline <id>: <page>")."""
    for line in output.splitlines():
        if line.startswith("Pipeline ") and ":" in line:
            return line.split()[1].rstrip(":")
    raise AssertionError(f"launch printed no pipeline id:\n{output[-3000:]}")
