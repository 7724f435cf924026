"""A small client of the ClearML REST API for the server tests: what the server *recorded* is read here, in the test
process, without the SDK (which the non-server tests in the same process use offline)."""

from __future__ import annotations

import base64
import json
import time
import urllib.request


class Api:
    def __init__(self, host: str, access_key: str, secret_key: str):
        self.host = host.rstrip("/")
        basic = base64.b64encode(f"{access_key}:{secret_key}".encode()).decode()
        self.token = self._post("auth.login", {}, f"Basic {basic}")["token"]

    def _post(self, endpoint: str, body: dict, authorization: str) -> dict:
        request = urllib.request.Request(f"{self.host}/{endpoint}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": authorization})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["data"]

    def call(self, endpoint: str, **body) -> dict:
        return self._post(endpoint, body, f"Bearer {self.token}")

    # What the tests ask of the server.
    def task(self, task_id: str) -> dict:
        return self.call("tasks.get_all_ex", id=[task_id], search_hidden=True)["tasks"][0]

    def tasks(self, **query) -> list[dict]:
        return self.call("tasks.get_all_ex", search_hidden=True, **query)["tasks"]

    def steps_of(self, pipeline_id: str) -> dict[str, dict]:
        """The step tasks of a pipeline run by node name, as its controller recorded them (the DAG state in its
        `Pipeline` configuration): a step served from cache is the earlier run's task."""
        state = (self.task(pipeline_id).get("configuration") or {}).get("Pipeline", {}).get("value")
        ids = {name: node.get("job_id") for name, node in json.loads(state or "{}").items() if node.get("job_id")}
        tasks = {t["id"]: t for t in self.tasks(id=list(ids.values()))} if ids else {}
        return {name: tasks[task_id] for name, task_id in ids.items() if task_id in tasks}

    def parameters(self, task: dict) -> dict[str, str]:
        return {f"{section}/{name}": item.get("value") for section, items in (task.get("hyperparams") or {}).items()
                for name, item in items.items()}

    def artifacts(self, task: dict) -> dict[str, dict]:
        return {a["key"]: a for a in (task.get("execution") or {}).get("artifacts") or []}

    def console(self, task_id: str) -> str:
        events = self.call("events.get_task_log", task=task_id, batch_size=10000, navigate_earlier=False)["events"]
        return "".join(e.get("msg", "") for e in events)

    def console_with(self, task_id: str, text: str, timeout: float = 120) -> str:
        """The task's console once it holds `text` (the last lines of a process reach the server after its status
        does), or as it is at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            console = self.console(task_id)
            if text in console or time.monotonic() > deadline:
                return console
            time.sleep(3)

    def models(self, **query) -> list[dict]:
        return self.call("models.get_all", **query)["models"]

    def project_ids(self, name: str) -> list[str]:
        return [p["id"] for p in self.call("projects.get_all", name=f"^{name}", search_hidden=True)["projects"]]

    def wait(self, task_id: str, timeout: float, ended=("completed", "failed", "stopped", "published",
                                                         "closed")) -> dict:
        """The task once it ended (or at the timeout, as it is then)."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.task(task_id)
            if task["status"] in ended or time.monotonic() > deadline:
                return task
            time.sleep(3)
